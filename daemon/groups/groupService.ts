/**
 * Groups as the daemon runs them (DESIGN §3 Groups): create, invite, join from a Welcome, send, receive, remove,
 * leave. The MLS work is the pure layer of daemon/mls; this class adds the server calls and the store. Everything
 * that touches a group's state runs one at a time (`serial`): RPC calls and stream items alike, so an own message
 * is stored before its echo is seen and a commit is never built on a state that is being changed.
 *
 * Each log entry is applied in one transaction: new MLS state, stored message, cursor, event; a burst of
 * application messages of one group shares one transaction.
 */
import { randomBytes } from "node:crypto"
import type { Logger } from "pino"
import type { CiphersuiteImpl } from "ts-mls"
import { decodeMlsMessage } from "ts-mls"
import { fromBase64Url, toBase64Url } from "../../rpc-schema/common.js"
import type { GroupMembersResult, GroupSummary } from "../../rpc-schema/daemon/group.js"
import type { MessageListResult, MessageSendResult } from "../../rpc-schema/daemon/message.js"
import { AppError } from "../../rpc-schema/errors.js"
import { groups as routes, keys as keyRoutes } from "../../rpc-schema/server/index.js"
import type { LogEntry } from "../../rpc-schema/server/http/groups.js"
import type { InboxItem } from "../../rpc-schema/server/http/inbox.js"
import type { GroupCursor } from "../../rpc-schema/server/ws.js"
import type { Clock } from "../clock.js"
import type { EventBus } from "../events.js"
import {
  addMembers,
  commitPendingProposals,
  createChatGroup,
  joinFromWelcome,
  leavePending,
  memberChanges,
  proposeLeave,
  removeMembers,
  type PendingCommit,
} from "../mls/group.js"
import { GroupError } from "../mls/groupError.js"
import { decodeKeyPackageBytes } from "../mls/groupKeyPackage.js"
import { deserializeState, epoch, groupId, isActive, members, ownLeafIndex, serializeState } from "../mls/groupState.js"
import type { ChatGroup, Member } from "../mls/groupState.js"
import type { SignatureKeyPair } from "../mls/identity.js"
import { encryptText, processIncoming } from "../mls/message.js"
import { purgeWal, type Db } from "../store/database.js"
import type { GroupStore, StoredGroup } from "../store/groupStore.js"
import type { OutboxStore } from "../store/outboxStore.js"
import type { PoolStore } from "../store/poolStore.js"
import type { Session } from "../sync/session.js"
import type { Directory } from "./directory.js"
import { OutboxSender, type SendOutcome } from "./outbox.js"

type WelcomeItem = Extract<InboxItem, { kind: "welcome" }>

interface QueuedSend {
  outcome: Promise<SendOutcome>
  groupId: string
  clientId: string
}

/** A message.send call waiting for the next send task. */
interface WaitingSend {
  ref: string
  text: string
  resolve: (q: QueuedSend) => void
  reject: (err: unknown) => void
}
type RemovedItem = Extract<InboxItem, { kind: "removed" }>

/** How many times a Commit is rebuilt after losing an epoch race before giving up. */
const maxCommitAttempts = 8

export interface GroupServiceOptions {
  db: Db
  groups: GroupStore
  outbox: OutboxStore
  pool: PoolStore
  events: EventBus
  clock: Clock
  log: Logger
  session: Session
  username: string
  /** The same arrays on every call: the crypto provider caches the signing key by array identity. */
  keys: SignatureKeyPair
  suite: () => Promise<CiphersuiteImpl>
  directory: Directory
  /** A Welcome consumed one of our KeyPackages: the pool wants a maintenance pass. */
  onKeyConsumed: () => void
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i])
}

/** A GroupError of the MLS layer as the AppError an RPC caller gets. */
function asAppError(err: unknown): unknown {
  if (err instanceof GroupError) return new AppError(err.rpcCode, err.message, err.details && { ...err.details })
  return err
}

export class GroupService {
  private queue: Promise<unknown> = Promise.resolve()
  readonly sender: OutboxSender
  private readonly lazyCursors = new Map<string, number>()
  private lazyTimer: NodeJS.Timeout | undefined
  private waitingSends: WaitingSend[] = []

  constructor(private readonly o: GroupServiceOptions) {
    this.sender = new OutboxSender({ ...o, log: o.log.child({ part: "outbox" }) })
  }

  /** Runs `f` after everything queued before it; failures are the caller's, the queue goes on. */
  private serial<T>(f: () => Promise<T>): Promise<T> {
    const run = this.queue.then(f)
    this.queue = run.catch(() => undefined)
    return run.catch((err: unknown) => {
      throw asAppError(err)
    })
  }

  private now(): number {
    return this.o.clock.now()
  }

  /** A group by id, or by a name no other group of this profile has. */
  private resolve(ref: string): StoredGroup {
    const byId = this.o.groups.get(ref)
    if (byId) return byId
    const named = this.o.groups.byName(ref)
    if (named.length === 1) return named[0]!
    if (named.length > 1)
      throw new AppError("conflict", `${named.length} groups are named "${ref}"; use the group id`, {
        groupIds: named.map((g) => g.id),
      })
    throw new AppError("not_found", `no group "${ref}"`)
  }

  private active(ref: string): StoredGroup {
    const g = this.resolve(ref)
    if (g.status !== "active") throw new AppError("not_member", `removed from group "${g.name}"`)
    return g
  }

  summary(g: StoredGroup): GroupSummary {
    const state = deserializeState(g.state)
    return {
      groupId: g.id,
      name: g.name,
      epoch: g.epoch,
      members: members(state).map((m) => m.username),
      status: g.status,
      lastSeq: g.lastSeq,
      joinedAt: g.joinedAt,
    }
  }

  list(): GroupSummary[] {
    return this.o.groups.all().map((g) => this.summary(g))
  }

  members(ref: string): GroupMembersResult {
    const g = this.resolve(ref)
    const state = deserializeState(g.state)
    const own = ownLeafIndex(state)
    return {
      groupId: g.id,
      name: g.name,
      epoch: g.epoch,
      members: members(state).map((m) => ({
        username: m.username,
        leafIndex: m.leafIndex,
        signatureKey: toBase64Url(m.signaturePublicKey),
        self: m.leafIndex === own,
      })),
    }
  }

  messages(ref: string, before: number | undefined, limit: number): MessageListResult {
    const id = this.resolve(ref).id
    const queued = this.o.outbox
      .queued(id)
      .map((e) => ({ clientId: toBase64Url(e.clientId), text: e.text, createdAt: e.createdAt }))
    return { ...this.o.groups.messages(id, before, limit), queued }
  }

  /** Where the stream resumes, per group this profile is still in. */
  cursors(): GroupCursor[] {
    return this.o.groups
      .all()
      .filter((g) => g.status === "active")
      .map((g) => ({ groupId: g.id, after: g.lastSeq }))
  }

  create(name: string): Promise<GroupSummary> {
    return this.serial(async () => {
      if (this.o.groups.byName(name).length > 0) throw new AppError("conflict", `a group named "${name}" exists`)
      const cs = await this.o.suite()
      const state = await createChatGroup({
        name,
        creator: { username: this.o.username, keys: this.o.keys },
        now: this.now(),
        cs,
      })
      const id = toBase64Url(groupId(state))
      await this.o.session.call(routes.createGroup, { body: { groupId: id } })
      const g: StoredGroup = {
        id,
        name,
        state: serializeState(state),
        epoch: 0,
        lastSeq: 0,
        status: "active",
        joinedAt: this.now(),
        joinedBy: null,
      }
      this.o.groups.insert(g)
      this.o.log.info({ groupId: id }, "group created")
      return this.summary(g)
    })
  }

  invite(ref: string, user: string): Promise<GroupSummary> {
    return this.serial(async () => {
      const id = this.active(ref).id
      const cs = await this.o.suite()
      const first = deserializeState(this.o.groups.get(id)!.state)
      if (members(first).some((m) => m.username === user))
        throw new AppError("conflict", `${user} is in the group already`)
      const signaturePublicKey = await this.o.directory.keyFor(user)
      let reservation = await this.reserve(user)
      for (let attempt = 1; ; attempt++) {
        await this.settle(id)
        const keyPackage = decodeKeyPackageBytes(fromBase64Url(reservation.keyPackage))
        const state = deserializeState(this.o.groups.get(id)!.state)
        const pending = await addMembers(
          state,
          [{ username: user, signaturePublicKey, keyPackage }],
          this.now(),
          cs,
          this.o.directory.check,
        ).catch((err: unknown) => {
          if (err instanceof GroupError && err.details?.reason === "signature_key_mismatch")
            this.o.directory.refuseKeyPackage(user, keyPackage.leafNode.signaturePublicKey)
          throw err
        })
        try {
          await this.postCommit(id, pending, [{ user, ref: reservation.ref, reservationId: reservation.reservationId }])
          return this.summary(this.o.groups.get(id)!)
        } catch (err) {
          if (!(err instanceof AppError) || attempt >= maxCommitAttempts) throw err
          if (err.code === "epoch_conflict") await this.catchUp(id)
          else if (err.code === "reservation_expired") reservation = await this.reserve(user)
          else throw err
        }
      }
    })
  }

  remove(ref: string, user: string): Promise<GroupSummary> {
    return this.serial(async () => {
      const id = this.active(ref).id
      const cs = await this.o.suite()
      await this.commitWithRetry(id, (state) => removeMembers(state, [user], cs, this.o.directory.check))
      return this.summary(this.o.groups.get(id)!)
    })
  }

  leave(ref: string): Promise<GroupSummary> {
    return this.serial(async () => {
      const g = this.active(ref)
      const cs = await this.o.suite()
      // Own queued messages go before the proposal that takes this member out.
      await this.sender.flush(g.id)
      const { state, proposal } = await proposeLeave(deserializeState(g.state), cs)
      await this.o.session.call(routes.postMessage, {
        params: { groupId: g.id },
        body: { message: toBase64Url(proposal) },
      })
      this.o.groups.saveState(g.id, serializeState(state), Number(epoch(state)))
      return this.summary(this.o.groups.get(g.id)!)
    })
  }

  /**
   * Encrypts and queues; the outbox posts. The state that encrypted the message and the outbox entry are stored in
   * one transaction before anything is posted: a ratchet generation is never used twice and a crash loses nothing.
   * Sends that wait together are encrypted in order and stored in ONE transaction (see `encryptWaiting`).
   */
  async send(ref: string, text: string): Promise<MessageSendResult> {
    const queued = await new Promise<QueuedSend>((resolve, reject) => {
      this.waitingSends.push({ ref, text, resolve, reject })
      // The first waiting send schedules the task; the ones that arrive before it starts join it.
      if (this.waitingSends.length === 1) void this.serial(() => this.encryptWaiting()).catch(() => undefined)
    })
    this.sender.kick()
    const o = await queued.outcome
    const base = {
      clientId: queued.clientId,
      groupId: queued.groupId,
      sender: this.o.username,
      text,
      own: true as const,
    }
    switch (o.kind) {
      case "sent":
        return {
          ...base,
          state: "sent",
          seq: o.message.seq,
          sentAt: o.message.sentAt,
          receivedAt: o.message.receivedAt,
        }
      case "queued":
        return { ...base, state: "queued", error: o.error }
      case "failed":
        throw o.error
    }
  }

  /**
   * The group commit of sends: every send waiting when this task starts is encrypted in order on its group's state
   * as it evolves in memory; then one transaction stores each group's final state and all the outbox rows. Each
   * call is answered only after that commit (a failed commit fails them all, and nothing of them is stored).
   */
  private async encryptWaiting(): Promise<void> {
    const batch = this.waitingSends
    this.waitingSends = []
    const states = new Map<string, { state: ChatGroup; used: boolean }>()
    const rows: { send: WaitingSend; groupId: string; clientId: Uint8Array; message: Uint8Array }[] = []
    try {
      const cs = await this.o.suite()
      for (const send of batch) {
        try {
          const id = this.active(send.ref).id
          let current = states.get(id)
          if (current === undefined) {
            // A proposal (someone's leave) blocks application messages until committed: commit it first.
            await this.commitProposals(id, cs)
            const g = this.o.groups.get(id)!
            if (g.status !== "active") throw new AppError("not_member", `removed from group "${g.name}"`)
            current = { state: deserializeState(g.state), used: false }
            states.set(id, current)
          }
          const { state, message } = await encryptText(current.state, send.text, cs)
          current.state = state
          current.used = true
          rows.push({ send, groupId: id, clientId: randomBytes(16), message })
        } catch (err) {
          send.reject(asAppError(err))
        }
      }
      const now = this.now()
      const ids = this.o.db.transaction(() => {
        for (const [id, { state, used }] of states)
          if (used) this.o.groups.saveState(id, serializeState(state), Number(epoch(state)))
        return rows.map((r) =>
          this.o.outbox.add({
            groupId: r.groupId,
            clientId: r.clientId,
            message: r.message,
            text: r.send.text,
            createdAt: now,
          }),
        )
      })()
      // Waited for from here on, before the sender loop can reach the entries.
      rows.forEach((r, i) =>
        r.send.resolve({
          outcome: this.sender.wait(ids[i]!),
          groupId: r.groupId,
          clientId: toBase64Url(r.clientId),
        }),
      )
    } catch (err) {
      // Nothing was stored (a send refused earlier is settled already: rejecting it again does nothing).
      for (const send of batch) send.reject(asAppError(err))
    }
  }

  /** Reserves one of `user`'s KeyPackages; none left is `pool_exhausted`. */
  private async reserve(user: string) {
    try {
      return await this.o.session.call(keyRoutes.reserve, { body: { target: user } })
    } catch (err) {
      if (err instanceof AppError && err.code === "no_keypackage_available")
        throw new AppError("pool_exhausted", `${user} has no KeyPackage left on the server; try again later`, {
          user,
        })
      throw err
    }
  }

  /**
   * Builds a Commit on the current state and posts it; on epoch_conflict catches up and builds it again. `build`
   * answers undefined when, after catching up, there is nothing left to commit.
   */
  private async commitWithRetry(
    id: string,
    build: (state: ChatGroup) => Promise<PendingCommit | undefined>,
  ): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      await this.settle(id)
      const pending = await build(deserializeState(this.o.groups.get(id)!.state))
      if (pending === undefined) return
      try {
        return await this.postCommit(id, pending, [])
      } catch (err) {
        if (!(err instanceof AppError) || err.code !== "epoch_conflict" || attempt >= maxCommitAttempts) throw err
        await this.catchUp(id)
      }
    }
  }

  /** Commits the proposals others made (a leave) unless a Commit that came first did. */
  private commitProposals(id: string, cs: CiphersuiteImpl): Promise<void> {
    return this.commitWithRetry(id, async (state) =>
      Object.keys(state.mls.unappliedProposals).length === 0 || leavePending(state) || !isActive(state)
        ? undefined
        : commitPendingProposals(state, cs, this.o.directory.check),
    )
  }

  /**
   * Posts a Commit; once the server took it, its state becomes the group's. The roster change the server applies is
   * the Commit's own: every member it removes (pending leave proposals included, which ts-mls commits by reference).
   */
  private async postCommit(
    id: string,
    pending: PendingCommit,
    keyPackages: { user: string; ref: string; reservationId: string }[],
  ): Promise<void> {
    // Queued messages were encrypted at the current epoch: they go first, or members past the Commit may not read them.
    await this.sender.flush(id)
    // Kept until the answer is known: if it is lost, the Commit's echo on the log settles it.
    this.o.groups.setPending(id, { commit: pending.commit, state: serializeState(pending.state) })
    try {
      await this.o.session.call(routes.commit, {
        params: { groupId: id },
        body: {
          commit: toBase64Url(pending.commit),
          keyPackages,
          removes: pending.removed.map((m) => m.username),
          ...(pending.welcome && { welcome: toBase64Url(pending.welcome) }),
        },
      })
    } catch (err) {
      if (!(err instanceof AppError && err.code === "server_unreachable")) this.o.groups.setPending(id, null)
      throw err
    }
    this.adopt(id, pending.state, pending.added, pending.removed)
  }

  /** An own Commit was accepted: its state becomes the group's (the cursor moves only when `seq` is given). */
  private adopt(id: string, state: ChatGroup, added: Member[], removed: Member[], seq?: number): void {
    const g = this.o.groups.get(id)!
    this.o.db.transaction(() => {
      this.o.groups.saveState(id, serializeState(state), Number(epoch(state)), seq)
      this.o.groups.setPending(id, null)
      this.o.events.emit("group.updated", {
        groupId: id,
        name: g.name,
        epoch: Number(epoch(state)),
        members: members(state).map((m) => m.username),
        added: added.map((m) => m.username),
        removed: removed.map((m) => m.username),
        by: this.o.username,
        reason: "commit",
      })
    })()
  }

  /** An own Commit whose answer was lost: the log says whether it landed (adopted while catching up) or not. */
  private async settle(id: string): Promise<void> {
    if (this.o.groups.pending(id) === undefined) return
    await this.catchUp(id)
    this.o.groups.setPending(id, null)
  }

  /** Reads the group's log from the server after the stored cursor and applies every entry. */
  private async catchUp(id: string): Promise<void> {
    for (;;) {
      const g = this.o.groups.get(id)
      if (!g || g.status !== "active") return
      const page = await this.o.session.call(routes.readLog, {
        params: { groupId: id },
        query: { after: g.lastSeq, limit: 500 },
      })
      for (const e of page.entries) await this.apply(e)
      const last = page.entries.at(-1)?.seq
      if (last === undefined || last >= page.lastSeq) return
    }
  }

  // ---- the stream's side ----

  /**
   * Log entries from the stream, in order (a burst that arrived together). A run of two or more application
   * messages of one group is applied in one transaction; anything else one entry at a time. Throws only for a
   * passing failure (the stream retries from its cursors).
   */
  onEntries(entries: LogEntry[]): Promise<void> {
    return this.serial(async () => {
      for (let i = 0; i < entries.length;) {
        const first = entries[i]!
        let end = i
        while (end < entries.length && entries[end]!.groupId === first.groupId && entries[end]!.kind === "application")
          end++
        if (end - i >= 2) {
          await this.applyMessages(entries.slice(i, end))
          i = end
        } else {
          await this.apply(first)
          i++
        }
      }
    })
  }

  /**
   * Application messages of one group, processed in order on the evolving state in memory, then written in ONE
   * transaction: the final state, every message, the cursor (past the last entry) and the events. A crash before
   * the commit leaves the stored state and cursor as they were, so the stream sends the whole run again; after it,
   * the cursor is past them all. An entry that does not decrypt to an application message ends the run: what came
   * before it is written, and it and the rest go through `apply` one at a time.
   */
  private async applyMessages(entries: LogEntry[]): Promise<void> {
    const g = this.o.groups.get(entries[0]!.groupId)
    if (!g || g.status !== "active") return
    const cs = await this.o.suite()
    let state = deserializeState(g.state)
    let changed = false
    let last = g.lastSeq
    const received: { entry: LogEntry; sender: string; text: string }[] = []
    let rest: LogEntry[] = []
    let others = false
    for (const [i, entry] of entries.entries()) {
      if (entry.seq <= last) continue
      // Own messages were stored when sent: the echo only moves the cursor.
      if (entry.sender !== this.o.username) {
        others = true
        try {
          const incoming = await processIncoming(state, fromBase64Url(entry.message), cs, this.o.directory.check)
          if (incoming.kind === "application") {
            state = incoming.state
            changed = true
            received.push({ entry, sender: incoming.sender.username, text: incoming.text })
          } else if (incoming.kind !== "stale") {
            rest = entries.slice(i)
            break
          }
        } catch (err) {
          // Nothing of the run is written: it comes again on the next connection.
          const transient = this.o.directory.takeTransient()
          if (transient) throw transient
          this.o.log.warn({ groupId: g.id, seq: entry.seq, err: (err as Error).message }, "log entry not applied")
        }
      }
      last = entry.seq
    }
    if (!others) this.advanceLater(g.id, last)
    else if (last > g.lastSeq) {
      const now = this.now()
      this.o.db.transaction(() => {
        if (changed) this.o.groups.saveState(g.id, serializeState(state), Number(epoch(state)), last)
        else this.o.groups.advance(g.id, last)
        for (const { entry, sender, text } of received) {
          const message = { groupId: g.id, seq: entry.seq, sender, text, sentAt: entry.receivedAt }
          if (this.o.groups.addMessage({ ...message, receivedAt: now, own: false }))
            this.o.events.emit("message.received", { ...message, group: g.name })
        }
      })()
    }
    for (const entry of rest) await this.apply(entry)
  }

  private async apply(entry: LogEntry): Promise<void> {
    const g = this.o.groups.get(entry.groupId)
    if (!g || g.status !== "active" || entry.seq <= g.lastSeq) return
    if (entry.sender === this.o.username && entry.kind === "commit") {
      const pending = this.o.groups.pending(g.id)
      if (pending && sameBytes(pending.commit, fromBase64Url(entry.message))) {
        const state = deserializeState(pending.state)
        const { added, removed } = memberChanges(members(deserializeState(g.state)), members(state))
        this.adopt(g.id, state, added, removed, entry.seq)
        return
      }
    }
    // Own messages were stored when sent, own proposals kept when made; own Commits were adopted when the server
    // took them (their echo is `stale`).
    if (entry.sender === this.o.username && entry.kind !== "commit") {
      this.advanceLater(g.id, entry.seq)
      return
    }
    const cs = await this.o.suite()
    const before = deserializeState(g.state)
    let incoming: Awaited<ReturnType<typeof processIncoming>>
    try {
      incoming = await processIncoming(before, fromBase64Url(entry.message), cs, this.o.directory.check)
    } catch (err) {
      const transient = this.o.directory.takeTransient()
      if (transient) throw transient
      this.o.log.warn({ groupId: g.id, seq: entry.seq, err: (err as Error).message }, "log entry not applied")
      this.o.groups.advance(g.id, entry.seq)
      return
    }
    const state = incoming.state
    const ep = Number(epoch(state))
    let commitLeave = false
    this.o.db.transaction(() => {
      switch (incoming.kind) {
        case "application": {
          this.o.groups.saveState(g.id, serializeState(state), ep, entry.seq)
          const fresh = this.o.groups.addMessage({
            groupId: g.id,
            seq: entry.seq,
            sender: incoming.sender.username,
            text: incoming.text,
            sentAt: entry.receivedAt,
            receivedAt: this.now(),
            own: false,
          })
          if (fresh)
            this.o.events.emit("message.received", {
              groupId: g.id,
              group: g.name,
              seq: entry.seq,
              sender: incoming.sender.username,
              text: incoming.text,
              sentAt: entry.receivedAt,
            })
          break
        }
        case "commit":
          this.o.groups.saveState(g.id, serializeState(state), Number(incoming.epoch), entry.seq)
          if (incoming.removedSelf) this.o.groups.setStatus(g.id, "removed")
          this.o.events.emit("group.updated", {
            groupId: g.id,
            name: g.name,
            epoch: Number(incoming.epoch),
            members: members(state).map((m) => m.username),
            added: incoming.added.map((m) => m.username),
            removed: incoming.removed.map((m) => m.username),
            by: incoming.committer?.username ?? null,
            reason: incoming.removedSelf ? "removed" : "commit",
          })
          break
        case "proposal": {
          this.o.groups.saveState(g.id, serializeState(state), ep, entry.seq)
          const leaver =
            incoming.proposalType === "remove" && incoming.removes?.leafIndex === incoming.proposer?.leafIndex
              ? incoming.removes
              : undefined
          if (leaver === undefined) break
          this.o.events.emit("group.updated", {
            groupId: g.id,
            name: g.name,
            epoch: ep,
            members: members(state).map((m) => m.username),
            added: [],
            removed: [],
            by: leaver.username,
            reason: "leaveProposed",
          })
          commitLeave = this.isLeaveCommitter(state, leaver.leafIndex)
          break
        }
        case "stale":
          this.o.groups.advance(g.id, entry.seq)
          break
      }
    })()
    if (commitLeave) await this.commitLeave(g.id, cs)
  }

  /**
   * An own echo moves the cursor without a transaction of its own: the moves are written together a moment later
   * (or by the next entry's transaction, which sets the cursor past them). Losing them in a crash only means the
   * echoes come again, and an own echo changes nothing but the cursor.
   */
  private advanceLater(id: string, seq: number): void {
    this.lazyCursors.set(id, Math.max(seq, this.lazyCursors.get(id) ?? 0))
    this.lazyTimer ??= setTimeout(() => this.flushCursors(), 200)
  }

  private flushCursors(): void {
    clearTimeout(this.lazyTimer)
    this.lazyTimer = undefined
    const moves = [...this.lazyCursors]
    this.lazyCursors.clear()
    if (moves.length === 0 || !this.o.db.open) return
    this.o.db.transaction(() => {
      for (const [id, seq] of moves) this.o.groups.advance(id, seq)
    })()
  }

  /** Stops the outbox and writes the cursor moves still in memory; the database is closed after. */
  close(): void {
    this.sender.stop()
    this.flushCursors()
  }

  /** The member that commits someone's leave: the active member with the lowest leaf index, leaver apart. */
  private isLeaveCommitter(state: ChatGroup, leaver: number): boolean {
    if (!isActive(state)) return false
    const first = members(state).find((m) => m.leafIndex !== leaver)
    return first?.leafIndex === ownLeafIndex(state)
  }

  private async commitLeave(id: string, cs: CiphersuiteImpl): Promise<void> {
    try {
      await this.commitProposals(id, cs)
    } catch (err) {
      // The leave still happens: the next sender commits it (see send), or another member does.
      this.o.log.info({ groupId: id, err: (err as Error).message }, "leave not committed by this member")
    }
  }

  /** A Welcome from the inbox: join, or report `invite.failed`. Throws only for a passing failure. */
  onWelcome(item: WelcomeItem): Promise<void> {
    return this.serial(() => this.join(item))
  }

  private failed(item: WelcomeItem, code: string, message: string): void {
    this.o.log.warn({ groupId: item.groupId, by: item.by, code, message }, "invite failed")
    this.o.events.emit("invite.failed", { groupId: item.groupId, by: item.by, code, message })
  }

  private async join(item: WelcomeItem): Promise<void> {
    if (this.o.groups.get(item.groupId)?.status === "active") return
    const bytes = fromBase64Url(item.welcome)
    let refs: string[]
    try {
      const decoded = decodeMlsMessage(bytes, 0)
      if (decoded === undefined || decoded[0].wireformat !== "mls_welcome") throw new Error("not a Welcome")
      refs = decoded[0].welcome.secrets.map((s) => toBase64Url(s.newMember))
    } catch (err) {
      return this.failed(item, "invalid_welcome", (err as Error).message)
    }
    const ref = refs.find((r) => this.o.pool.privateKey(r) !== undefined)
    if (ref === undefined) {
      const used = refs.some((r) => this.o.pool.stateOf(r) === "consumed")
      return used
        ? this.failed(item, "keypackage_consumed", "the Welcome's KeyPackage was used already")
        : this.failed(item, "unknown_keypackage", "the Welcome is for no KeyPackage this profile holds")
    }
    const key = this.o.pool.privateKey(ref)!
    const cs = await this.o.suite()
    let joined: Awaited<ReturnType<typeof joinFromWelcome>>
    try {
      joined = await joinFromWelcome(
        bytes,
        decodeKeyPackageBytes(key.publicData),
        {
          initPrivateKey: key.initPrivate,
          hpkePrivateKey: key.hpkePrivate,
          signaturePrivateKey: this.o.keys.privateKey,
        },
        cs,
        this.o.directory.check,
      )
    } catch (err) {
      const transient = this.o.directory.takeTransient()
      if (transient) throw transient
      const code =
        err instanceof GroupError && err.code === "credential_refused" ? "credential_refused" : "invalid_welcome"
      return this.failed(item, code, (err as Error).message)
    }
    const id = toBase64Url(groupId(joined.state))
    if (id !== item.groupId) return this.failed(item, "invalid_welcome", "the Welcome is for another group")
    const now = this.now()
    const memberNames = joined.members.map((m) => m.username)
    this.o.db.transaction(() => {
      this.o.groups.insert({
        id,
        name: joined.name,
        state: serializeState(joined.state),
        epoch: Number(epoch(joined.state)),
        lastSeq: item.seq,
        status: "active",
        joinedAt: now,
        joinedBy: item.by,
      })
      this.o.pool.consume(ref, now)
      this.o.events.emit("group.joined", {
        groupId: id,
        name: joined.name,
        epoch: Number(epoch(joined.state)),
        members: memberNames,
        by: item.by,
      })
    })()
    // The private init key is gone from the file, not only from the table.
    if (!key.lastResort) purgeWal(this.o.db)
    this.o.log.info({ groupId: id, by: item.by }, "joined group")
    this.o.onKeyConsumed()
  }

  /** A removal notice: the removing Commit came first on the stream, so the state knows already; mark it. */
  onRemoved(item: RemovedItem): Promise<void> {
    return this.serial(async () => {
      const g = this.o.groups.get(item.groupId)
      if (!g || g.status === "removed") return
      this.o.db.transaction(() => {
        this.o.groups.setStatus(g.id, "removed")
        this.o.events.emit("group.updated", {
          groupId: g.id,
          name: g.name,
          epoch: item.epoch + 1,
          members: [],
          added: [],
          removed: [this.o.username],
          by: item.by,
          reason: "removed",
        })
      })()
    })
  }
}
