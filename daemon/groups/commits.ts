/**
 * This member's own Commits. Only one Commit per epoch wins (RFC 9420 §14): a Commit and the state it leads to are
 * stored as pending before posting, adopted once the server took the Commit, and dropped when it refused it; on
 * epoch_conflict the group's log is read and the Commit built again on the result. A Commit whose answer was lost
 * is settled by its echo on the log (see IncomingLog), or by reading the log before the next Commit.
 */
import type { CiphersuiteImpl } from "ts-mls"
import { toBase64Url } from "../../rpc-schema/common.js"
import { AppError } from "../../rpc-schema/errors.js"
import { groups as routes } from "../../rpc-schema/server/index.js"
import { commitPendingProposals, leavePending, type PendingCommit } from "../mls/group.js"
import { deserializeState, epoch, isActive, members, serializeState } from "../mls/groupState.js"
import type { ChatGroup, Member } from "../mls/groupState.js"
import type { GroupContext } from "./context.js"
import type { OutboxSender } from "./outbox.js"
import { changeView, handles } from "./queries.js"

/** How many times a Commit is rebuilt after losing an epoch race before giving up. */
const maxCommitAttempts = 8

/** A reserved KeyPackage an add Commit spends; the server marks it spent when it takes the Commit. */
export interface KeyPackageSpend {
  user: string
  ref: string
  reservationId: string
}

/** A Commit ready to post, with the reservations it spends (none unless it adds members). */
export type OutgoingCommit = PendingCommit & { keyPackages?: KeyPackageSpend[] }

export class Committer {
  constructor(
    private readonly ctx: GroupContext,
    private readonly sender: OutboxSender,
    /** Reads the group's log after the stored cursor and applies it (IncomingLog.catchUp). */
    private readonly catchUp: (id: string) => Promise<void>,
  ) {}

  /**
   * Builds a Commit on the current state and posts it; on epoch_conflict catches up and builds it again. Any other
   * refusal goes to `recover`, which answers true when it removed the cause and a new attempt may succeed. `build`
   * answers undefined when, after catching up, there is nothing left to commit.
   */
  async commitWithRetry(
    id: string,
    build: (state: ChatGroup) => Promise<OutgoingCommit | undefined>,
    recover: (err: AppError) => Promise<boolean> = () => Promise.resolve(false),
  ): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      await this.settle(id)
      const outgoing = await build(deserializeState(this.ctx.groups.get(id)!.state))
      if (outgoing === undefined) return
      try {
        return await this.post(id, outgoing)
      } catch (err) {
        if (!(err instanceof AppError) || attempt >= maxCommitAttempts) throw err
        if (err.code === "epoch_conflict") await this.catchUp(id)
        else if (!(await recover(err))) throw err
      }
    }
  }

  /** Commits the proposals others made (a leave) unless a Commit that came first did. */
  commitProposals(id: string, cs: CiphersuiteImpl): Promise<void> {
    return this.commitWithRetry(id, async (state) =>
      Object.keys(state.mls.unappliedProposals).length === 0 || leavePending(state) || !isActive(state)
        ? undefined
        : commitPendingProposals(state, cs, this.ctx.directory.check),
    )
  }

  /** An own Commit was accepted: its state becomes the group's (the cursor moves only when `seq` is given). */
  adopt(id: string, state: ChatGroup, added: Member[], removed: Member[], seq?: number): void {
    const g = this.ctx.groups.get(id)!
    this.ctx.db.transaction(() => {
      this.ctx.groups.saveState(id, serializeState(state), Number(epoch(state)), seq)
      this.ctx.groups.setPending(id, null)
      this.ctx.events.emit("group.updated", {
        groupId: id,
        name: g.name,
        epoch: Number(epoch(state)),
        members: handles(this.ctx.directory, members(state)),
        ...changeView(this.ctx.directory, added, removed, members(state)),
        by: this.ctx.username,
        reason: "commit",
      })
    })()
  }

  /**
   * Posts a Commit; once the server took it, its state becomes the group's. The roster change the server applies is
   * the Commit's own: every member it removes (pending leave proposals included, which ts-mls commits by reference).
   */
  private async post(id: string, outgoing: OutgoingCommit): Promise<void> {
    // Queued messages were encrypted at the current epoch: they go first, or members past the Commit may not read them.
    await this.sender.flush(id)
    // Kept until the answer is known: if it is lost, the Commit's echo on the log settles it.
    this.ctx.groups.setPending(id, { commit: outgoing.commit, state: serializeState(outgoing.state) })
    try {
      await this.ctx.session.call(routes.commit, {
        params: { groupId: id },
        body: {
          commit: toBase64Url(outgoing.commit),
          keyPackages: outgoing.keyPackages ?? [],
          removes: outgoing.removed.map((m) => this.ctx.directory.rosterId(m.identity, m.signaturePublicKey)),
          ...(outgoing.welcome && { welcome: toBase64Url(outgoing.welcome) }),
          groupInfo: toBase64Url(outgoing.groupInfo),
        },
      })
    } catch (err) {
      if (!(err instanceof AppError && err.code === "server_unreachable")) this.ctx.groups.setPending(id, null)
      throw err
    }
    this.adopt(id, outgoing.state, outgoing.added, outgoing.removed)
  }

  /** An own Commit whose answer was lost: the log says whether it landed (adopted while catching up) or not. */
  private async settle(id: string): Promise<void> {
    if (this.ctx.groups.pending(id) === undefined) return
    await this.catchUp(id)
    this.ctx.groups.setPending(id, null)
  }
}
