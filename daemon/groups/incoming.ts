/**
 * The log's side of groups: entries from the stream (or read while catching up) applied to the stored state, and
 * the removal notice from the inbox. Each entry is applied in one transaction: new MLS state, stored message,
 * cursor, event; a burst of application messages of one group shares one transaction. Another member's leave
 * proposal is committed here by the member chosen to do it.
 */
import type { CiphersuiteImpl } from "ts-mls"
import { fromBase64Url } from "../../rpc-schema/common.js"
import { AppError, type ErrorCode } from "../../rpc-schema/errors.js"
import { groups as routes } from "../../rpc-schema/server/index.js"
import type { LogEntry } from "../../rpc-schema/server/http/groups.js"
import type { InboxItem } from "../../rpc-schema/server/http/inbox.js"
import { sameBytes } from "../../shared/bytes.js"
import { memberChanges } from "../mls/group.js"
import { logPageSize } from "../sync/httpClient.js"
import { deserializeState, epoch, isActive, members, ownLeafIndex, serializeState } from "../mls/groupState.js"
import type { ChatGroup } from "../mls/groupState.js"
import { processIncoming } from "../mls/message.js"
import type { Committer } from "./commits.js"
import type { GroupContext } from "./context.js"
import type { Who } from "./directory.js"
import { changeView, handles, requireActive } from "./queries.js"

export type RemovedItem = Extract<InboxItem, { kind: "removed" }>

/** Failures of a server read that pass: the stream retries the frame on its next connection. */
const passing: readonly ErrorCode[] = ["server_unreachable", "rate_limited", "internal", "unauthenticated"]

export class IncomingLog {
  private readonly lazyCursors = new Map<string, number>()
  private lazyTimer: NodeJS.Timeout | undefined

  constructor(
    private readonly ctx: GroupContext,
    private readonly commits: Committer,
  ) {}

  /**
   * Log entries from the stream, in order (a burst that arrived together). A run of two or more application
   * messages of one group is applied in one transaction; anything else one entry at a time. Throws only for a
   * passing failure (the stream retries from its cursors).
   */
  async applyEntries(entries: LogEntry[]): Promise<void> {
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
  }

  /**
   * Reads the group's log from the server after the stored cursor and applies every entry. A gap retention left
   * (`prunedThrough`) is handled as the stream's `pruned` frame is; when it leaves the group out of sync, this throws
   * `group_out_of_sync` (the caller was about to build on that state).
   */
  async catchUp(id: string): Promise<void> {
    for (let pages = 0; ; pages++) {
      const g = this.ctx.groups.get(id)
      if (!g || g.status === "removed") return
      requireActive(g)
      const after = Math.max(g.lastSeq, this.lazyCursors.get(id) ?? 0)
      const page = await this.ctx.session.call(routes.readLog, {
        params: { groupId: id },
        query: { after, limit: logPageSize },
      })
      if (page.prunedThrough !== undefined) {
        await this.onPruned(id, after, page.prunedThrough, page.entries[0])
        requireActive(this.ctx.groups.get(id)!)
      }
      for (const e of page.entries) await this.apply(e)
      const last = page.entries.at(-1)?.seq ?? page.prunedThrough
      // Bounded: a log that keeps growing faster than it is read is caught up with by the stream instead.
      if (last === undefined || last >= page.lastSeq || pages >= 1000) return
    }
  }

  /**
   * Retention deleted the group's entries (after, prunedThrough] before this daemon processed them. Whether the MLS
   * state can go on depends on what was lost: the epoch of the first entry after the gap (or the group's epoch when
   * none follows) above the state's means a Commit was among them. In ONE transaction: the cursor moves past the gap,
   * the group becomes `out_of_sync` when it cannot continue, and `group.historyLost` is recorded. `next` is the first
   * entry after the gap when the caller has it already (catch-up); the stream's `pruned` frame reads it from the
   * server. Throws only for a passing failure (the stream retries from its cursors, which have not moved).
   */
  async onPruned(id: string, after: number, prunedThrough: number, next?: LogEntry): Promise<void> {
    const g = this.ctx.groups.get(id)
    if (!g || g.status === "removed") return
    const from = Math.max(after, g.lastSeq, this.lazyCursors.get(id) ?? 0)
    if (prunedThrough <= from) return
    if (g.status === "out_of_sync") return this.advanceLater(id, prunedThrough)
    let through = prunedThrough
    let groupEpoch: number | undefined = next?.epoch
    if (groupEpoch === undefined) ({ through, epoch: groupEpoch } = await this.epochAfter(id, prunedThrough))
    const canContinue = groupEpoch === undefined || groupEpoch <= g.epoch
    const status = canContinue ? "active" : "out_of_sync"
    this.ctx.log.warn({ groupId: id, after: from, prunedThrough: through, canContinue }, "group history lost")
    this.ctx.db.transaction(() => {
      this.ctx.groups.advance(id, through)
      if (!canContinue) this.ctx.groups.setStatus(id, "out_of_sync", from)
      this.ctx.events.emit("group.historyLost", {
        groupId: id,
        group: g.name,
        after: from,
        prunedThrough: through,
        lost: through - from,
        canContinue,
        epoch: g.epoch,
        groupEpoch: groupEpoch ?? g.epoch,
        status,
        rejoined: false,
      })
    })()
  }

  /**
   * The epoch of the group's first entry after `through` (the epoch a Commit was made at, or the one a message names),
   * or the group's epoch when no entry follows. Retention may have deleted more meanwhile: the gap then ends later.
   * Undefined when the server does not say (this member was removed meanwhile: its removal notice follows). When
   * entries keep arriving between the two reads it throws a passing error, so the frame comes again later, rather
   * than guess that the group can go on.
   */
  private async epochAfter(id: string, through: number): Promise<{ through: number; epoch: number | undefined }> {
    try {
      for (let attempt = 0; attempt < 4; attempt++) {
        const page = await this.ctx.session.call(routes.readLog, {
          params: { groupId: id },
          query: { after: through, limit: 1 },
        })
        through = Math.max(through, page.prunedThrough ?? 0)
        if (page.entries[0]) return { through, epoch: page.entries[0].epoch }
        const info = await this.ctx.session.call(routes.getGroup, { params: { groupId: id } })
        // An entry appended between the two reads: read it (its epoch is the one after the gap, the group's may be later).
        if (info.lastSeq <= through) return { through, epoch: info.epoch }
      }
    } catch (err) {
      if (!(err instanceof AppError) || passing.includes(err.code)) throw err
      this.ctx.log.info({ groupId: id, code: err.code }, "epoch after a history gap unknown")
      return { through, epoch: undefined }
    }
    throw new AppError("internal", "the group's log kept growing while the epoch after a history gap was read")
  }

  /**
   * A Commit the server took (it is in the log) that this state cannot apply: the group has moved to an epoch this
   * daemon cannot follow, so messages it sent would be unreadable and later ones unreadable to it. In ONE
   * transaction the cursor moves past it, the group becomes `out_of_sync` (sends fail fast with `group_out_of_sync`
   * until a new Welcome) and `group.updated` (reason `outOfSync`) is recorded, instead of carrying on silently.
   */
  private lostSync(
    g: { id: string; name: string; epoch: number; lastSeq: number },
    state: ChatGroup,
    seq: number,
  ): void {
    this.ctx.db.transaction(() => {
      this.ctx.groups.setStatus(g.id, "out_of_sync", Math.max(g.lastSeq, this.lazyCursors.get(g.id) ?? 0))
      this.ctx.groups.advance(g.id, seq)
      this.ctx.events.emit("group.updated", {
        groupId: g.id,
        name: g.name,
        epoch: g.epoch,
        members: handles(this.ctx.directory, members(state)),
        ...changeView(this.ctx.directory, [], [], []),
        by: null,
        reason: "outOfSync",
      })
    })()
  }

  /**
   * An entry the stream gave up on after repeated passing failures: passed over as one that fails validation is (a
   * Commit leaves the group out of sync, since the state cannot follow without it).
   */
  passOver(entry: LogEntry): void {
    const g = this.ctx.groups.get(entry.groupId)
    if (!g || g.status !== "active" || entry.seq <= Math.max(g.lastSeq, this.lazyCursors.get(g.id) ?? 0)) return
    this.ctx.log.warn({ groupId: g.id, seq: entry.seq }, "log entry given up")
    if (entry.kind === "commit") return this.lostSync(g, deserializeState(g.state), entry.seq)
    this.ctx.groups.advance(g.id, entry.seq)
  }

  /** A removal notice: the removing Commit came first on the stream, so the state knows already; mark it. */
  onRemoved(item: RemovedItem): void {
    const g = this.ctx.groups.get(item.groupId)
    if (!g || g.status === "removed") return
    this.ctx.db.transaction(() => {
      this.ctx.groups.setStatus(g.id, "removed")
      this.ctx.events.emit("group.updated", {
        groupId: g.id,
        name: g.name,
        epoch: item.epoch + 1,
        members: [],
        added: [],
        removed: [this.ctx.username],
        addedDevices: [],
        removedDevices: [{ username: this.ctx.username, deviceId: this.ctx.deviceId, clientId: this.ctx.clientId }],
        by: item.by,
        reason: "removed",
      })
    })()
  }

  /** Writes the cursor moves still in memory (before the database is closed). */
  flushCursors(): void {
    clearTimeout(this.lazyTimer)
    this.lazyTimer = undefined
    const moves = [...this.lazyCursors]
    this.lazyCursors.clear()
    if (moves.length === 0 || !this.ctx.db.open) return
    this.ctx.db.transaction(() => {
      for (const [id, seq] of moves) this.ctx.groups.advance(id, seq)
    })()
  }

  /**
   * Application messages of one group, processed in order on the evolving state in memory, then written in ONE
   * transaction: the final state, every message, the cursor (past the last entry) and the events. A crash before
   * the commit leaves the stored state and cursor as they were, so the stream sends the whole run again; after it,
   * the cursor is past them all. An entry that does not decrypt to an application message ends the run: what came
   * before it is written, and it and the rest go through `apply` one at a time.
   */
  private async applyMessages(entries: LogEntry[]): Promise<void> {
    const g = this.ctx.groups.get(entries[0]!.groupId)
    if (!g || g.status === "removed") return
    if (g.status === "out_of_sync") return this.advanceLater(g.id, entries.at(-1)!.seq)
    const cs = await this.ctx.suite()
    let state = deserializeState(g.state)
    let changed = false
    let last = g.lastSeq
    const received: { entry: LogEntry; sender: Who; text: string }[] = []
    let rest: LogEntry[] = []
    let others = false
    for (const [i, entry] of entries.entries()) {
      if (entry.seq <= last) continue
      // Own messages were stored when sent: the echo only moves the cursor.
      if (entry.senderClientId !== this.ctx.clientId) {
        others = true
        try {
          const incoming = await processIncoming(state, fromBase64Url(entry.message), cs, this.ctx.directory.check)
          if (incoming.kind === "application") {
            state = incoming.state
            changed = true
            const { identity, signaturePublicKey } = incoming.sender
            received.push({ entry, sender: this.ctx.directory.who(identity, signaturePublicKey), text: incoming.text })
          } else if (incoming.kind !== "stale") {
            rest = entries.slice(i)
            break
          }
        } catch (err) {
          // Nothing of the run is written: it comes again on the next connection.
          const transient = this.ctx.directory.takeTransient()
          if (transient) throw transient
          this.ctx.log.warn({ groupId: g.id, seq: entry.seq, err: (err as Error).message }, "log entry not applied")
        }
      }
      last = entry.seq
    }
    if (!others) this.advanceLater(g.id, last)
    else if (last > g.lastSeq) {
      const now = this.ctx.clock.now()
      this.ctx.db.transaction(() => {
        if (changed) this.ctx.groups.saveState(g.id, serializeState(state), Number(epoch(state)), last)
        else this.ctx.groups.advance(g.id, last)
        for (const { entry, sender, text } of received) {
          const message = {
            groupId: g.id,
            seq: entry.seq,
            sender: sender.username,
            senderDevice: sender.deviceId,
            text,
            sentAt: entry.receivedAt,
          }
          if (this.ctx.groups.addMessage({ ...message, receivedAt: now, own: false }))
            this.ctx.events.emit("message.received", { ...message, group: g.name })
        }
      })()
    }
    for (const entry of rest) await this.apply(entry)
  }

  private async apply(entry: LogEntry): Promise<void> {
    const g = this.ctx.groups.get(entry.groupId)
    if (!g || g.status === "removed" || entry.seq <= g.lastSeq) return
    // Its state cannot process what follows a lost Commit: the cursor only moves (the hello stays near the head).
    if (g.status === "out_of_sync") return this.advanceLater(g.id, entry.seq)
    const own = entry.senderClientId === this.ctx.clientId
    if (own && entry.kind === "commit") {
      const pending = this.ctx.groups.pending(g.id)
      if (pending && sameBytes(pending.commit, fromBase64Url(entry.message))) {
        const state = deserializeState(pending.state)
        const { added, removed } = memberChanges(members(deserializeState(g.state)), members(state))
        this.commits.adopt(g.id, state, added, removed, entry.seq)
        return
      }
    }
    // Own messages were stored when sent, own proposals kept when made; own Commits were adopted when the server
    // took them (their echo is `stale`).
    if (own && entry.kind !== "commit") {
      this.advanceLater(g.id, entry.seq)
      return
    }
    const cs = await this.ctx.suite()
    const before = deserializeState(g.state)
    let incoming: Awaited<ReturnType<typeof processIncoming>>
    try {
      incoming = await processIncoming(
        before,
        fromBase64Url(entry.message),
        cs,
        this.ctx.directory.check,
        this.ctx.directory.externalJoinCheck,
      )
    } catch (err) {
      const transient = this.ctx.directory.takeTransient()
      if (transient) throw transient
      this.ctx.log.warn({ groupId: g.id, seq: entry.seq, err: (err as Error).message }, "log entry not applied")
      if (entry.kind === "commit") return this.lostSync(g, before, entry.seq)
      this.ctx.groups.advance(g.id, entry.seq)
      return
    }
    const state = incoming.state
    const ep = Number(epoch(state))
    let commitLeave = false
    this.ctx.db.transaction(() => {
      switch (incoming.kind) {
        case "application": {
          this.ctx.groups.saveState(g.id, serializeState(state), ep, entry.seq)
          const sender = this.ctx.directory.who(incoming.sender.identity, incoming.sender.signaturePublicKey)
          const message = {
            groupId: g.id,
            seq: entry.seq,
            sender: sender.username,
            senderDevice: sender.deviceId,
            text: incoming.text,
            sentAt: entry.receivedAt,
          }
          if (this.ctx.groups.addMessage({ ...message, receivedAt: this.ctx.clock.now(), own: false }))
            this.ctx.events.emit("message.received", { ...message, group: g.name })
          break
        }
        case "commit":
          this.ctx.groups.saveState(g.id, serializeState(state), Number(incoming.epoch), entry.seq)
          if (incoming.removedSelf) this.ctx.groups.setStatus(g.id, "removed")
          this.ctx.events.emit("group.updated", {
            groupId: g.id,
            name: g.name,
            epoch: Number(incoming.epoch),
            members: handles(this.ctx.directory, members(state)),
            ...changeView(this.ctx.directory, incoming.added, incoming.removed, members(state)),
            by: incoming.committer
              ? this.ctx.directory.who(incoming.committer.identity, incoming.committer.signaturePublicKey).username
              : null,
            reason: incoming.removedSelf ? "removed" : "commit",
          })
          break
        case "proposal": {
          this.ctx.groups.saveState(g.id, serializeState(state), ep, entry.seq)
          const leaver =
            incoming.proposalType === "remove" && incoming.removes?.leafIndex === incoming.proposer?.leafIndex
              ? incoming.removes
              : undefined
          if (leaver === undefined) break
          this.ctx.events.emit("group.updated", {
            groupId: g.id,
            name: g.name,
            epoch: ep,
            members: handles(this.ctx.directory, members(state)),
            ...changeView(this.ctx.directory, [], [], []),
            by: this.ctx.directory.who(leaver.identity, leaver.signaturePublicKey).username,
            reason: "leaveProposed",
          })
          commitLeave = this.isLeaveCommitter(state, leaver.leafIndex)
          break
        }
        case "stale":
          this.ctx.groups.advance(g.id, entry.seq)
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

  /** The member that commits someone's leave: the active member with the lowest leaf index, leaver apart. */
  private isLeaveCommitter(state: ChatGroup, leaver: number): boolean {
    if (!isActive(state)) return false
    const first = members(state).find((m) => m.leafIndex !== leaver)
    return first?.leafIndex === ownLeafIndex(state)
  }

  private async commitLeave(id: string, cs: CiphersuiteImpl): Promise<void> {
    try {
      await this.commits.commitProposals(id, cs)
    } catch (err) {
      // The leave still happens: the next sender commits it (see SendBatcher), or another member does.
      this.ctx.log.info({ groupId: id, err: (err as Error).message }, "leave not committed by this member")
    }
  }
}
