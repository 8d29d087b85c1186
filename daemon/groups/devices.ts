/**
 * This account's devices in this device's groups. The server cannot add or remove a leaf: the account's devices do it.
 * A pass
 *
 * - joins, by external Commit, the groups where another device of the account is and this one is not (the server's
 *   joinable groups; a new device joins its account's groups on its own, with no other device online: `rejoin.ts`);
 * - for every active group this device is in, removes the leaves of the account's devices the directory lists as
 *   removed (one Commit per group), and adds the account's active devices that are missing (a device linked later
 *   that has not joined by itself yet), with KeyPackages reserved per device.
 *
 * Passes run at start, on the maintenance timer, after `identity.removeDevice`, when `identity.devices` shows a
 * changed list, and while a link code this device made is open (the directory is read every few seconds until the new
 * device shows up with a bound MLS key). Several devices of the account may do the same at once: the first Commit
 * wins, the others catch up, find nothing left to do and let their reservations lapse. One pass at a time; each group
 * is a separate verb on the group queue, so other work goes on between groups.
 */
import type { GetUserResult } from "../../rpc-schema/server/http/auth.js"
import { AppError } from "../../rpc-schema/errors.js"
import { groups as routes } from "../../rpc-schema/server/index.js"
import { removeMembers } from "../mls/group.js"
import { members } from "../mls/groupState.js"
import type { GroupService } from "./groupService.js"
import { addUserDevices } from "./invite.js"
import { joinAccountGroup } from "./rejoin.js"

/** How often an open link code makes the directory be read. */
const linkPollMs = 2000

export class DeviceSync {
  private running: Promise<void> | undefined
  private again = false
  /** The device list last seen, to tell whether `identity.devices` shows a change. */
  private seen = ""
  private linkWatch: NodeJS.Timeout | undefined
  private closed = false

  constructor(private readonly groups: GroupService) {}

  private get ctx() {
    return this.groups.ctx
  }

  /** The account's devices now; a list that changed since last seen starts a pass. */
  async devices(): Promise<GetUserResult> {
    const account = await this.ctx.directory.account(this.ctx.userId)
    if (this.remember(account)) this.request()
    return account
  }

  /** Starts a pass (or one more after the running one); failures are logged, the next trigger tries again. */
  request(): void {
    if (this.closed) return
    if (this.running) {
      this.again = true
      return
    }
    this.running = this.pass()
      .catch((err: unknown) => this.ctx.log.info({ err: (err as Error).message }, "device pass failed"))
      .finally(() => {
        this.running = undefined
        if (this.again) {
          this.again = false
          this.request()
        }
      })
  }

  /** Resolves once no pass runs (tests, and `identity.removeDevice` callers that want the result). */
  async idle(): Promise<void> {
    while (this.running) await this.running
  }

  /**
   * A link code was made: until it expires, the directory is read every few seconds, and a new device with a bound
   * MLS key (it uploaded KeyPackages) starts a pass.
   */
  watchLink(expiresAt: number): void {
    clearTimeout(this.linkWatch)
    let baseline: number | undefined
    const tick = async () => {
      if (this.closed) return
      try {
        // A changed list starts a pass by itself.
        await this.devices()
      } catch (err) {
        this.ctx.log.info({ err: (err as Error).message }, "reading the directory for a linked device failed")
      }
      baseline ??= this.usable
      if (this.usable > baseline || this.ctx.clock.now() >= expiresAt) return
      this.linkWatch = setTimeout(() => void tick(), linkPollMs).unref()
    }
    void tick()
  }

  close(): void {
    this.closed = true
    clearTimeout(this.linkWatch)
  }

  /** Active devices with a bound MLS key, as last seen. */
  private usable = 0

  private remember(account: GetUserResult): boolean {
    const now = JSON.stringify(account.devices.map((d) => [d.deviceId, d.mlsKey, d.removedAt]))
    const changed = now !== this.seen
    this.seen = now
    this.usable = account.devices.filter((d) => d.removedAt === null && d.mlsKey !== null).length
    return changed
  }

  private async pass(): Promise<void> {
    const account = await this.ctx.directory.account(this.ctx.userId)
    this.remember(account)
    const removed = new Set(account.devices.filter((d) => d.removedAt !== null).map((d) => d.clientId))
    // A group stored already (left, removed, out of sync, or joined meanwhile) is not joined again here.
    const { groups: joinable } = await this.ctx.session.call(routes.joinableGroups, {})
    for (const { groupId } of joinable) {
      if (this.closed || this.ctx.groups.get(groupId) !== undefined) continue
      await this.groups
        .run((s) => joinAccountGroup(s.ctx, groupId))
        .catch((err: unknown) => {
          // No GroupInfo yet, no bound MLS key yet (KeyPackages not uploaded), the server gone: the next pass tries again.
          this.ctx.log.info({ groupId, err: (err as Error).message }, "account group not joined")
        })
    }
    for (const g of this.ctx.groups.all()) {
      if (g.status !== "active" || this.closed) continue
      await this.groups
        .run(async (s) => {
          // Left, removed or out of sync while earlier groups were being done.
          if (this.ctx.groups.get(g.id)?.status !== "active") return
          const cs = await this.ctx.suite()
          await s.commits.commitWithRetry(g.id, async (state) => {
            const gone = members(state).filter((m) =>
              removed.has(this.ctx.directory.rosterId(m.identity, m.signaturePublicKey)),
            )
            if (gone.length === 0) return undefined
            return removeMembers(
              state,
              gone.map((m) => m.identity),
              cs,
              this.ctx.directory.check,
            )
          })
          try {
            await addUserDevices(this.ctx, s.commits, g.id, this.ctx.userId, "skip")
          } catch (err) {
            // A new device without KeyPackages yet: added on a later pass.
            if (!(err instanceof AppError && err.code === "pool_exhausted")) throw err
          }
        })
        .catch((err: unknown) => {
          // One group failing (a Commit refused, the server gone) does not keep the others from their turn.
          this.ctx.log.info({ groupId: g.id, err: (err as Error).message }, "devices not brought in line in a group")
        })
    }
  }
}
