/**
 * The server's WebSocket stream (rpc-schema/server/ws.ts): inbox items (key-directory events, Welcomes, removal
 * notices) and group log entries. Connects with the session's bearer token (a 401 renews it), sends `hello` from the
 * stored inbox cursor and the groups' cursors, and reconnects with the daemon's backoff (backoff.ts).
 *
 * When the server ends the stream because its session expired or was revoked (close 4001), the daemon logs in again at
 * once and resumes. Retention's reports are acted on: a `pruned` frame goes to the group service (history lost), an
 * `inboxExpired` report is recorded, then acknowledged so the server clears it.
 *
 * Frames are handled one at a time, in arrival order; entry frames that have arrived already behind an entry frame go
 * with it as one burst (applied in one transaction by the group service). An inbox item's cursor is stored (and
 * acknowledged) once it is handled; a group's cursor moves with the entries inside the group store's transaction. A handler that fails for
 * a passing reason (server unreachable) drops the connection: the next one resumes from the stored cursors. No one
 * item may wedge the stream: after `maxItemFailures` failures, or `maxItemRetryMs` since its first, it is given up
 * (`onGivenUp`: refused and reported) and passed over like a handled one, and the rest of the stream goes on.
 */
import type { Logger } from "pino"
import WebSocket from "ws"
import { TypeCompiler } from "@sinclair/typebox/compiler"
import type { LogEntry } from "../../rpc-schema/server/http/groups.js"
import type { InboxExpired, InboxItem } from "../../rpc-schema/server/http/inbox.js"
import { closeCodes, ServerFrame, streamPath, type GroupCursor, type PrunedFrame } from "../../rpc-schema/server/ws.js"
import { backoffMs } from "../backoff.js"
import type { Clock } from "../clock.js"
import type { CursorStore } from "../store/cursorStore.js"
import { maxAnswerBytes } from "./httpClient.js"
import type { Session } from "./session.js"

const serverFrame = TypeCompiler.Compile(ServerFrame)
/** Failures of one inbox item, log entry or pruned report before it is given up... */
export const maxItemFailures = 5
/** ...or time since its first failure (by the daemon's clock). */
export const maxItemRetryMs = 10 * 60_000
const inboxCursor = "inbox"
/**
 * Written by daemons before groups existed: the first Welcome or removal item they skipped. Such a daemon's inbox
 * cursor moved past items it never acknowledged; on start the cursor goes back to just before it, once.
 */
const firstUnhandled = "inbox.firstUnhandled"

/** The inbox items about this profile's KeyPackages (everything but group items). */
export type KeyEventItem = Exclude<InboxItem, { kind: "welcome" | "removed" | "deviceAdded" | "deviceRemoved" }>

export interface StreamEvents {
  /** A key-directory item arrived (live or in catch-up). */
  onKeyEvent(item: KeyEventItem): void
  /** A Welcome or removal notice; a rejection means "not now": the item is handled again on the next connection. */
  onGroupItem(item: Extract<InboxItem, { kind: "welcome" | "removed" }>): Promise<void>
  /**
   * Group log entries that arrived together (one or more, in stream order); a rejection means "not now", as above.
   * A burst is handed over at once so that it can be applied in one transaction.
   */
  onEntries(entries: LogEntry[]): Promise<void>
  /**
   * Retention deleted entries of a group this daemon had not received (they come no more: the group's next entries
   * follow); a rejection means "not now", as above (the cursor has not moved, so the frame comes again).
   */
  onPruned(frame: PrunedFrame): Promise<void>
  /**
   * Retention deleted unacknowledged inbox items: record the report durably (once per report); the stream
   * acknowledges it to the server only after this resolves, so a crash in between loses nothing.
   */
  onInboxExpired(report: InboxExpired): void
  /**
   * An item failed `maxItemFailures` times (or for `maxItemRetryMs`): refuse and report it. The stream then treats it
   * as handled (an inbox item is acknowledged; the entry is passed over by the group service, a Commit leaving the
   * group out of sync). A rejection means "not now", as above.
   */
  onGivenUp(what: GivenUp, error: string): Promise<void>
  /** Where each group resumes (the `hello` frame). */
  groupCursors(): GroupCursor[]
  /** The stream is up and caught up (true) or down (false). */
  onState(up: boolean, error?: string): void
}

export type GivenUp =
  | { kind: "inbox"; item: Extract<InboxItem, { kind: "welcome" | "removed" }> }
  | { kind: "entry"; entry: LogEntry }
  | { kind: "pruned"; frame: PrunedFrame }

export interface StreamOptions {
  baseMs?: number
  maxMs?: number
  /** The server pings every 30 s; silence for this long means the connection is dead. */
  idleMs?: number
}

export class ServerStream {
  private ws: WebSocket | undefined
  private stopped = false
  private failures = 0
  private retry: NodeJS.Timeout | undefined
  private idle: NodeJS.Timeout | undefined
  private up = false
  /**
   * A 401 on the upgrade, or a close because the stream's session ended (4001), is answered by one fresh login and an
   * immediate reconnect; a second one before the stream caught up is a failure like any other (backoff).
   */
  private renewed = false
  /** Frames are handled in order, one at a time (a burst of entry frames together). */
  private work: Promise<void> = Promise.resolve()
  /** Frames received and not handled yet, in arrival order. */
  private readonly frames: { ws: WebSocket; text: string }[] = []
  /** Items that failed, by key, until handled or given up. */
  private readonly failing = new Map<string, { count: number; since: number }>()

  constructor(
    private readonly session: Session,
    private readonly cursors: CursorStore,
    private readonly clock: Clock,
    private readonly events: StreamEvents,
    private readonly log: Logger,
    private readonly opts: StreamOptions = {},
  ) {}

  get open(): boolean {
    return this.up
  }

  start(): void {
    const skipped = this.cursors.get(firstUnhandled)
    if (skipped !== undefined) {
      this.cursors.set(inboxCursor, String(Math.max(0, Number(skipped) - 1)), this.clock.now())
      this.cursors.delete(firstUnhandled)
    }
    void this.connect()
  }

  private async connect(stale?: string): Promise<void> {
    if (this.stopped) return
    let token: string
    try {
      token = await this.session.bearer(stale)
    } catch (err) {
      return this.down((err as Error).message)
    }
    if (this.stopped) return
    const url = this.session.client.baseUrl.replace(/^http/, "ws") + streamPath
    const ws = new WebSocket(url, {
      headers: { authorization: `Bearer ${token}` },
      perMessageDeflate: false,
      // One frame carries one entry or item: the HTTP answer cap bounds it too.
      maxPayload: maxAnswerBytes,
    })
    this.ws = ws
    let refused = false
    ws.on("unexpected-response", (_req, res) => {
      refused = true
      ws.terminate()
      // An expired or revoked token: log in again at once (that is not a failure of the link).
      if (res.statusCode === 401 && !this.renewed) {
        this.renewed = true
        void this.connect(token)
      } else this.down(`stream refused: HTTP ${res.statusCode}`)
    })
    ws.on("open", () => {
      this.alive()
      // Whatever the previous connection left half done is finished before the cursors are read.
      void this.work.then(() => {
        if (ws !== this.ws || ws.readyState !== WebSocket.OPEN) return
        const after = Number(this.cursors.get(inboxCursor) ?? 0)
        ws.send(JSON.stringify({ type: "hello", groups: this.events.groupCursors(), inboxAfter: after }))
      })
    })
    ws.on("ping", () => this.alive())
    ws.on("message", (data) => {
      this.alive()
      this.frames.push({ ws, text: data.toString() })
      this.work = this.work.then(() => this.next())
    })
    ws.on("error", (err) => this.log.debug({ err }, "stream error"))
    ws.on("close", (code, reason) => {
      if (ws !== this.ws || refused) return
      this.ws = undefined
      if (code === closeCodes.sessionEnded) this.sessionEnded(token, reason.toString())
      else this.down(`stream closed (${code}${reason.length > 0 ? `: ${reason.toString()}` : ""})`)
    })
  }

  /**
   * The server closed the stream because its token expired or was revoked: log in again at once (the stale token is
   * not tried again, so no 401 round trip) and resume from the cursors, without a backoff wait and without reporting
   * the link down. The frames of the old connection not handled yet are dropped; the new one sends them again.
   */
  private sessionEnded(token: string, reason: string): void {
    clearTimeout(this.idle)
    if (this.stopped) return
    this.log.info({ reason }, "stream session ended; logging in again")
    if (this.renewed) return this.down(`stream closed: ${reason}`, token)
    this.renewed = true
    void this.connect(token)
  }

  private alive(): void {
    clearTimeout(this.idle)
    const ws = this.ws
    this.idle = setTimeout(() => ws?.terminate(), this.opts.idleMs ?? 75_000).unref()
  }

  /** A valid frame, or undefined (logged) for anything else. */
  private parse(text: string): ServerFrame | undefined {
    let frame: unknown
    try {
      frame = JSON.parse(text)
    } catch {
      return undefined
    }
    if (serverFrame.Check(frame)) return frame
    this.log.warn("unexpected stream frame")
    return undefined
  }

  /**
   * Handles the oldest waiting frame; when it is an entry, the entry frames right behind it that have arrived already
   * go with it (a burst). Every frame queued one `next` call, so calls that find the queue emptied do nothing.
   */
  private async next(): Promise<void> {
    const head = this.frames.shift()
    // Frames of a connection that was given up are not handled: the next one sends them again.
    if (!head || head.ws !== this.ws) return
    const frame = this.parse(head.text)
    if (!frame) return
    if (frame.type !== "entry") return this.onFrame(head.ws, frame)
    const burst: LogEntry[] = [frame]
    while (this.frames[0]?.ws === head.ws) {
      const more = this.parse(this.frames[0].text)
      if (more?.type !== "entry") break
      this.frames.shift()
      burst.push(more)
    }
    return this.onFrame(head.ws, frame, burst)
  }

  private async onFrame(ws: WebSocket, frame: ServerFrame, burst?: LogEntry[]): Promise<void> {
    try {
      await this.handle(ws, frame, burst)
      this.failing.delete(keyOf(frame))
    } catch (err) {
      if (ws !== this.ws) return
      const message = (err as Error).message
      if (!(await this.givenUp(frame, message))) {
        this.log.warn({ err: message }, "stream item not handled now; reconnecting")
        this.ws = undefined
        ws.terminate()
        return this.down(`stream item failed: ${message}`)
      }
      // Passed over as if handled: an inbox item is acknowledged; the rest of a burst goes on behind the entry.
      if (frame.type === "inbox") this.acknowledge(ws, frame.id)
      const rest = burst?.slice(1) ?? []
      if (rest.length > 0) await this.onFrame(ws, { ...rest[0]!, type: "entry" }, rest)
    }
  }

  /**
   * Counts a failure of `frame`; when it has failed too often or for too long, tells the handler that it is given up
   * (the handler refuses, reports and passes over it) and returns true.
   */
  private async givenUp(frame: ServerFrame, error: string): Promise<boolean> {
    const key = keyOf(frame)
    const now = this.clock.now()
    const f = this.failing.get(key) ?? { count: 0, since: now }
    f.count++
    this.failing.set(key, f)
    if (f.count < maxItemFailures && now - f.since < maxItemRetryMs) return false
    this.log.warn({ key, failures: f.count, error }, "stream item given up")
    try {
      if (frame.type === "inbox" && (frame.item.kind === "welcome" || frame.item.kind === "removed")) {
        await this.events.onGivenUp({ kind: "inbox", item: frame.item }, error)
      } else if (frame.type === "entry") await this.events.onGivenUp({ kind: "entry", entry: frame }, error)
      else if (frame.type === "pruned") await this.events.onGivenUp({ kind: "pruned", frame }, error)
    } catch (err) {
      this.log.warn({ key, err: (err as Error).message }, "giving up a stream item failed")
      return false
    }
    // An inbox item and an entry are behind the cursors now; a pruned report comes again on the next connection and,
    // still counted here, is given up again at its first failure.
    if (frame.type !== "pruned") this.failing.delete(key)
    return true
  }

  private acknowledge(ws: WebSocket, id: number): void {
    this.cursors.set(inboxCursor, String(id), this.clock.now())
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "ack", upTo: id }))
  }

  private async handle(ws: WebSocket, frame: ServerFrame, burst?: LogEntry[]): Promise<void> {
    switch (frame.type) {
      case "caughtUp":
        this.failures = 0
        this.renewed = false
        this.up = true
        this.events.onState(true)
        break
      case "inbox": {
        const item = frame.item
        // Devices of the account (issue 16): not acted on here yet, acknowledged like the rest.
        if (item.kind === "deviceAdded" || item.kind === "deviceRemoved") {
          this.log.info({ kind: item.kind, deviceId: item.deviceId }, "device of this account changed")
        } else if (item.kind !== "welcome" && item.kind !== "removed") {
          this.events.onKeyEvent(item)
        } else {
          await this.events.onGroupItem(item)
        }
        this.acknowledge(ws, frame.id)
        break
      }
      case "error":
        this.log.warn({ code: frame.code, msg: frame.message, groupId: frame.groupId }, "stream error frame")
        break
      case "pruned":
        await this.events.onPruned(frame)
        break
      case "inboxExpired":
        // Recorded first, acknowledged after: the report stays on the server until the ack reaches `through`.
        this.events.onInboxExpired({ count: frame.count, through: frame.through })
        if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "ack", upTo: frame.through }))
        break
      case "entry":
        await this.events.onEntries(burst ?? [frame])
        break
    }
  }

  /** The link failed: report it (once per outage) and reconnect after a backoff; `stale` is a token not to reuse. */
  private down(error: string, stale?: string): void {
    clearTimeout(this.idle)
    if (this.stopped) return
    if (this.up || this.failures === 0) this.events.onState(false, error)
    this.up = false
    this.failures++
    const delay = backoffMs(this.failures, this.opts.baseMs ?? 500, this.opts.maxMs ?? 30_000)
    this.log.debug({ error, delay }, "stream down; reconnecting")
    clearTimeout(this.retry)
    this.retry = setTimeout(() => {
      this.retry = undefined
      void this.connect(stale)
    }, delay).unref()
  }

  /** Retry now (`daemon.reconnect`): a link waiting for its backoff connects at once; an open or opening one is left. */
  reconnectNow(): void {
    if (this.stopped || this.retry === undefined) return
    clearTimeout(this.retry)
    this.retry = undefined
    void this.connect()
  }

  stop(): void {
    this.stopped = true
    clearTimeout(this.retry)
    clearTimeout(this.idle)
    this.ws?.terminate()
    this.ws = undefined
  }
}

/** Which item a frame is, for counting its failures. */
function keyOf(frame: ServerFrame): string {
  switch (frame.type) {
    case "inbox":
      return `inbox:${frame.id}`
    case "entry":
      return `entry:${frame.groupId}:${frame.seq}`
    case "pruned":
      return `pruned:${frame.groupId}:${frame.prunedThrough}`
    default:
      return frame.type
  }
}
