/**
 * One authenticated stream connection. It keeps, per streamed group, the last seq it sent and,
 * for the inbox, the last cursor it sent. Two ways to send:
 * - the fast path: a live entry whose seq is exactly the next one of its group, while nothing is
 *   pending, goes out at once as the frame the hub serialised for every subscriber;
 * - the pump: anything else (catch-up, a gap, inbox changes, a slow reader) marks the connection
 *   dirty, and the pump reads the store from the cursors until it finds nothing new, a page at a
 *   time and only while the socket's buffer is under the high-water mark.
 * Cursors only move forward, so nothing is sent twice; the pump reads committed state after every
 * notification, so nothing is skipped. What retention deleted is said, never skipped: a `pruned` frame
 * moves a group's cursor over deleted entries before the entries after them, and an `inboxExpired`
 * frame reports deleted inbox items whenever the user's report differs from the last one sent.
 *
 * A connection also ends by itself: without a valid hello in time, and when the session it was
 * opened with expires (or, through the hub, is revoked).
 */
import type { Duplex } from "node:stream"
import type { FastifyBaseLogger } from "fastify"
import { TypeCompiler } from "@sinclair/typebox/compiler"
import { WebSocket, type RawData } from "ws"
import { closeCodes, closeReasons, ClientFrame, type HelloFrame } from "../../rpc-schema/server/ws.js"
import type { InboxItem } from "../../rpc-schema/server/http/inbox.js"
import type { Clock } from "../clock.js"
import type { Session } from "../services/auth.js"
import type { DeliveryStore, ExpiredReport, InboxPage } from "../store/types.js"
import { caughtUpFrame, entryFrame, errorFrame, inboxExpiredFrame, inboxFrame, prunedFrame } from "./frames.js"

const clientFrame = TypeCompiler.Compile(ClientFrame)

export interface StreamLimits {
  /** Above this many buffered bytes a live frame disconnects the client (it resumes from its cursors). */
  maxBufferedBytes: number
  /** The pump sends only while fewer bytes than this are buffered. */
  highWaterBytes: number
  /** Entries or inbox items read per store query. */
  pageSize: number
  /** A connection that has not sent a valid hello this long after the upgrade is closed. */
  helloTimeoutMs: number
}

interface Subscription {
  /** Last seq sent. */
  cursor: number
  /** Last seq this user may receive (the Commit that removed it), else Infinity. */
  upper: number
}

/** What a connection tells the hub about its subscriptions. */
export interface SubscriptionIndex {
  subscribe(conn: StreamConnection, groupId: string): void
  unsubscribe(conn: StreamConnection, groupId: string): void
}

export class StreamConnection {
  /** False once a ping went unanswered; the hub's next ping round then drops the connection. */
  alive = true
  private readonly subs = new Map<string, Subscription>()
  private inboxCursor = 0
  /** The report of expired inbox items last sent; cleared when the store has none (acknowledged). */
  private reportedExpired: ExpiredReport | undefined
  private greeted = false
  /** The hello's cursors are set: the pump may run. A change heard while they are read must not start it at 0. */
  private started = false
  private closed = false
  private dirty = true
  private pumping = false
  /** Bumped by every notification the fast path did not serve, so that a running pump goes round again. */
  private generation = 0
  private caughtUp = false
  private drainTimer: NodeJS.Timeout | undefined
  /** The socket holds this tick's live frames, to write them all at once when the tick ends. */
  private corked = false
  private readonly helloTimer: NodeJS.Timeout
  private readonly cancelExpiry: () => void

  constructor(
    private readonly ws: WebSocket,
    /** The TCP socket under `ws`. */
    private readonly socket: Duplex,
    readonly session: Session,
    private readonly store: DeliveryStore,
    private readonly index: SubscriptionIndex,
    clock: Clock,
    private readonly limits: StreamLimits,
    private readonly log: FastifyBaseLogger,
  ) {
    ws.on("message", (data, isBinary) => this.onMessage(data, isBinary))
    ws.on("pong", () => (this.alive = true))
    // A socket that never says hello would otherwise hold its slot (and its address's) forever.
    this.helloTimer = setTimeout(
      () => this.close(closeCodes.helloTimeout, closeReasons.helloTimeout),
      limits.helloTimeoutMs,
    )
    // The stream lives no longer than its token, by the server's clock (tests move a ManualClock).
    this.cancelExpiry = clock.at(session.expiresAt, () =>
      this.close(closeCodes.sessionEnded, closeReasons.sessionExpired),
    )
  }

  /** The device this stream belongs to (its session's). */
  get device(): string {
    return this.session.device.deviceId
  }

  /** Called by the hub once the socket is closed. */
  dispose(): void {
    this.stop()
    for (const groupId of this.subs.keys()) this.index.unsubscribe(this, groupId)
    this.subs.clear()
  }

  /** The session this stream was opened with was revoked (or its device removed): nothing more is sent. */
  revoked(reason: string = closeReasons.sessionRevoked): void {
    this.close(closeCodes.sessionEnded, reason)
  }

  /** A live entry of a group this connection may be subscribed to, as the hub serialised it. */
  entry(groupId: string, seq: number, frame: Buffer): void {
    const sub = this.subs.get(groupId)
    if (this.closed || !sub || seq <= sub.cursor || seq > sub.upper) return
    if (this.dirty || this.pumping || seq !== sub.cursor + 1) return this.changed()
    sub.cursor = seq
    this.corkUntilTickEnds()
    this.ws.send(frame, { binary: false })
    if (this.ws.bufferedAmount > this.limits.maxBufferedBytes) this.tooSlow()
  }

  /**
   * The live entries of one group batch reach the hub in one tick: written together they cost one system call
   * (and one trip through the loopback or network stack) instead of one each, the largest cost of a fanout.
   */
  private corkUntilTickEnds(): void {
    if (this.corked) return
    this.corked = true
    this.socket.cork()
    process.nextTick(() => {
      this.corked = false
      this.socket.uncork()
    })
  }

  /** The user was removed by the Commit at `seq`: nothing of the group after it is sent. */
  ended(groupId: string, seq: number): void {
    const sub = this.subs.get(groupId)
    if (sub) sub.upper = Math.min(sub.upper, seq)
  }

  /** The user created a group: stream it from its start. */
  created(groupId: string): void {
    if (this.greeted) this.subscribe(groupId, 0)
  }

  /** The device joined the group by an external Commit at `seq`: stream it from the entry after that Commit. */
  joined(groupId: string, seq: number): void {
    if (this.greeted) this.subscribe(groupId, seq)
  }

  /** Something new may be in the store for this connection (inbox items, a missed entry). */
  changed(): void {
    this.dirty = true
    this.generation++
    void this.pump()
  }

  private subscribe(groupId: string, after: number, upper = Number.POSITIVE_INFINITY): void {
    if (this.subs.has(groupId)) return
    this.subs.set(groupId, { cursor: after, upper })
    this.index.subscribe(this, groupId)
  }

  private unsubscribe(groupId: string): void {
    if (this.subs.delete(groupId)) this.index.unsubscribe(this, groupId)
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    this.alive = true
    if (this.closed) return
    let frame: unknown
    try {
      frame = isBinary ? undefined : JSON.parse(data.toString())
    } catch {
      frame = undefined
    }
    if (!clientFrame.Check(frame)) return this.protocolError("not a client frame of rpc-schema/server/ws.ts")
    if (frame.type === "hello") {
      if (this.greeted) return this.protocolError("hello was sent already")
      this.greeted = true
      clearTimeout(this.helloTimer)
      this.hello(frame).catch((err: unknown) => this.fail(err))
    } else {
      this.store.ack(this.device, frame.upTo).catch((err: unknown) => this.fail(err))
    }
  }

  private async hello(h: HelloFrame): Promise<void> {
    const memberships = await this.store.memberships(this.device)
    // A group whose Welcome the client has not seen yet starts streaming right after that Welcome.
    const pending = await this.store.pendingWelcomes(this.device, h.inboxAfter)
    const asked = new Map(h.groups.map((g) => [g.groupId, g.after]))
    for (const m of memberships) {
      // A cursor past the head (a client's bug, or a restored database) is taken as the head.
      const after = Math.max(Math.min(asked.get(m.groupId) ?? 0, m.lastSeq), m.joinedSeq)
      asked.delete(m.groupId)
      if (pending.has(m.groupId)) continue
      if (m.removedSeq !== null && after >= m.removedSeq) continue
      this.subscribe(m.groupId, after, m.removedSeq ?? Number.POSITIVE_INFINITY)
    }
    for (const groupId of asked.keys()) {
      this.ws.send(errorFrame("not_member", "not a member of that group (or no such group)", groupId))
    }
    this.inboxCursor = h.inboxAfter
    this.started = true
    this.changed()
  }

  private async pump(): Promise<void> {
    if (this.pumping || this.closed || !this.started) return
    this.pumping = true
    try {
      for (;;) {
        if (this.closed) return
        if (this.ws.bufferedAmount > this.limits.highWaterBytes) return this.waitForDrain()
        const generation = this.generation
        // The inbox page and the report of expired items are read together, in one store call: an item after the
        // cursor is either among the items or counted in the report, so a client acknowledging what it received
        // cannot clear a report it has not been sent. The report goes first of all (a client learns of a lost
        // Welcome before the entries of that group); group entries go before inbox items (a removal notice follows
        // the removing Commit), so the page is sent only in a pass where the groups had nothing more.
        const page = await this.store.readInbox(this.device, this.inboxCursor, this.limits.pageSize)
        const sent = this.expired(page.expired) || (await this.pumpGroups()) || this.pumpInbox(page.items)
        if (sent === 0 && generation === this.generation) break
      }
      this.dirty = false
      if (!this.caughtUp) {
        this.caughtUp = true
        const groups = [...this.subs].map(([groupId, s]) => ({ groupId, seq: s.cursor }))
        this.ws.send(caughtUpFrame(groups, this.inboxCursor))
      }
    } catch (err) {
      this.fail(err)
    } finally {
      this.pumping = false
    }
  }

  private async pumpGroups(): Promise<number> {
    let sent = 0
    for (const [groupId, sub] of this.subs) {
      if (sub.cursor >= sub.upper) continue
      const { entries, prunedThrough } = await this.store.readLog(
        groupId,
        this.device,
        sub.cursor,
        this.limits.pageSize,
      )
      if (this.closed || this.subs.get(groupId) !== sub) return sent
      if (prunedThrough !== undefined && prunedThrough > sub.cursor) {
        // Retention deleted what comes next: say so, then go on after it.
        this.ws.send(prunedFrame(groupId, sub.cursor, prunedThrough))
        sub.cursor = prunedThrough
        sent++
      }
      for (const e of entries) {
        if (this.closed || this.subs.get(groupId) !== sub) return sent
        this.ws.send(entryFrame(e))
        sub.cursor = e.seq
        sent++
        if (this.ws.bufferedAmount > this.limits.highWaterBytes) return sent
      }
    }
    return sent
  }

  /** Sends the user's report of expired inbox items if it is not the one sent last; 1 if sent. */
  private expired(report: ExpiredReport | undefined): number {
    if (this.closed) return 0
    const last = this.reportedExpired
    this.reportedExpired = report
    if (!report || (last && last.count === report.count && last.through === report.through)) return 0
    this.ws.send(inboxExpiredFrame(report))
    return 1
  }

  /** Sends inbox items read (with the report) after `inboxCursor` at the start of this pass. */
  private pumpInbox(items: InboxPage["items"]): number {
    let sent = 0
    for (const i of items) {
      if (this.closed) return sent
      this.ws.send(inboxFrame(i))
      this.inboxCursor = i.id
      sent++
      const item = JSON.parse(i.item) as InboxItem
      if (item.kind === "welcome") this.subscribe(item.groupId, item.seq)
      if (item.kind === "removed") this.unsubscribe(item.groupId)
      if (this.ws.bufferedAmount > this.limits.highWaterBytes) return sent
    }
    return sent
  }

  private waitForDrain(): void {
    // ws has no drain event of its own; the buffer is checked again shortly.
    this.drainTimer ??= setTimeout(() => {
      this.drainTimer = undefined
      void this.pump()
    }, 5)
  }

  private tooSlow(): void {
    // The close frame would wait behind the backlog: cut the socket; the client resumes from its cursors.
    this.log.info({ device: this.device, buffered: this.ws.bufferedAmount }, "stream client too slow, disconnected")
    this.stop()
    this.ws.terminate()
  }

  private protocolError(message: string): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(errorFrame("invalid_request", message))
    this.close(closeCodes.protocolError, message.slice(0, 120))
  }

  private fail(err: unknown): void {
    this.log.error({ err, device: this.device }, "stream failed")
    this.close(1011, "internal error")
  }

  /** Ends the connection with a close frame; from here on nothing is sent or handled. */
  private close(code: number, reason: string): void {
    if (this.closed) return
    this.stop()
    this.ws.close(code, reason)
  }

  private stop(): void {
    this.closed = true
    clearTimeout(this.helloTimer)
    clearTimeout(this.drainTimer)
    this.cancelExpiry()
  }
}
