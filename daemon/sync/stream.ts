/**
 * The server's WebSocket stream (rpc-schema/server/ws.ts) as the daemon uses it today: key-directory events from
 * the inbox (keyReserved, keySpent, poolLow). Connects with the session's bearer token (a 401 renews it), sends
 * `hello` from the stored inbox cursor, persists the cursor after each item, and reconnects with exponential backoff
 * and full jitter. Welcome and removal items are not handled yet (groups come later): the cursor moves past them
 * but they are never acknowledged, so the server keeps them for whoever handles groups.
 */
import type { Logger } from "pino"
import WebSocket from "ws"
import { TypeCompiler } from "@sinclair/typebox/compiler"
import type { InboxItem } from "../../rpc-schema/server/http/inbox.js"
import { ServerFrame, streamPath } from "../../rpc-schema/server/ws.js"
import type { Clock } from "../clock.js"
import type { CursorStore } from "../store/cursorStore.js"
import type { Session } from "./session.js"

const serverFrame = TypeCompiler.Compile(ServerFrame)
const inboxCursor = "inbox"
/** The first inbox item the daemon could not handle: acknowledgements stop before it. */
const firstUnhandled = "inbox.firstUnhandled"

export interface StreamEvents {
  /** A key-directory item arrived (live or in catch-up). */
  onKeyEvent(item: Extract<InboxItem, { kind: "keyReserved" | "keySpent" | "poolLow" }>): void
  /** The stream is up and caught up (true) or down (false). */
  onState(up: boolean, error?: string): void
}

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
  /** A 401 on the upgrade is answered by one fresh login; a second one in a row is a failure like any other. */
  private renewed = false

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
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` }, perMessageDeflate: false })
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
      const after = Number(this.cursors.get(inboxCursor) ?? 0)
      ws.send(JSON.stringify({ type: "hello", groups: [], inboxAfter: after }))
    })
    ws.on("ping", () => this.alive())
    ws.on("message", (data) => {
      this.alive()
      this.onFrame(ws, data.toString())
    })
    ws.on("error", (err) => this.log.debug({ err }, "stream error"))
    ws.on("close", (code) => {
      if (ws !== this.ws || refused) return
      this.ws = undefined
      this.down(`stream closed (${code})`)
    })
  }

  private alive(): void {
    clearTimeout(this.idle)
    const ws = this.ws
    this.idle = setTimeout(() => ws?.terminate(), this.opts.idleMs ?? 75_000).unref()
  }

  private onFrame(ws: WebSocket, text: string): void {
    let frame: unknown
    try {
      frame = JSON.parse(text)
    } catch {
      return
    }
    if (!serverFrame.Check(frame)) {
      this.log.warn("unexpected stream frame")
      return
    }
    switch (frame.type) {
      case "caughtUp":
        this.failures = 0
        this.renewed = false
        this.up = true
        this.events.onState(true)
        break
      case "inbox": {
        const item = frame.item
        if (item.kind === "keyReserved" || item.kind === "keySpent" || item.kind === "poolLow") {
          this.events.onKeyEvent(item)
        } else if (this.cursors.get(firstUnhandled) === undefined) {
          this.cursors.set(firstUnhandled, String(frame.id), this.clock.now())
        }
        this.cursors.set(inboxCursor, String(frame.id), this.clock.now())
        const stop = this.cursors.get(firstUnhandled)
        const upTo = stop === undefined ? frame.id : Math.min(frame.id, Number(stop) - 1)
        if (upTo > 0 && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "ack", upTo }))
        break
      }
      case "error":
        this.log.warn({ code: frame.code, msg: frame.message }, "stream error frame")
        break
      case "entry":
        break
    }
  }

  private down(error: string): void {
    clearTimeout(this.idle)
    if (this.stopped) return
    if (this.up || this.failures === 0) this.events.onState(false, error)
    this.up = false
    this.failures++
    const base = this.opts.baseMs ?? 500
    const full = Math.min(this.opts.maxMs ?? 30_000, base * 2 ** Math.min(this.failures - 1, 20))
    const delay = Math.round(Math.random() * full)
    this.log.debug({ error, delay }, "stream down; reconnecting")
    clearTimeout(this.retry)
    this.retry = setTimeout(() => void this.connect(), delay).unref()
  }

  stop(): void {
    this.stopped = true
    clearTimeout(this.retry)
    clearTimeout(this.idle)
    this.ws?.terminate()
    this.ws = undefined
  }
}
