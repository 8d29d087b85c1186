/** A WebSocket stream client for tests: collects frames, tracks cursors, waits on conditions with a bound. */
import WebSocket from "ws"
import type { ErrorBody } from "../../rpc-schema/server/index.js"
import type { ServerFrame } from "../../rpc-schema/server/ws.js"

/** The server answered the upgrade with an HTTP error instead of a WebSocket. */
export class UpgradeRefused extends Error {
  constructor(
    readonly status: number,
    readonly body: ErrorBody,
  ) {
    super(`upgrade refused: ${status} ${body.error.code}`)
  }
}

export interface ConnectOptions {
  /** Where the client resumes from (sent in hello). */
  groups?: Map<string, number>
  inboxAfter?: number
  /** false: open the socket but send no hello. */
  hello?: boolean
  /** Connect from this loopback address (127.0.0.2 is another client address than 127.0.0.1). */
  localAddress?: string
}

export class StreamClient {
  readonly frames: ServerFrame[] = []
  /** Last seq received (or reported deleted by a `pruned` frame) per group, and the inbox cursor: what a reconnect resumes from. */
  readonly cursors = new Map<string, number>()
  inboxCursor = 0
  closed = false
  closeCode = 0
  closeReason = ""
  private waiters: (() => void)[] = []

  private constructor(readonly ws: WebSocket) {
    ws.on("message", (data) => {
      const f = JSON.parse(data.toString()) as ServerFrame
      this.frames.push(f)
      if (f.type === "entry") this.cursors.set(f.groupId, f.seq)
      if (f.type === "pruned") this.cursors.set(f.groupId, f.prunedThrough)
      if (f.type === "inbox") this.inboxCursor = f.id
      this.wake()
    })
    ws.on("close", (code, reason) => {
      this.closed = true
      this.closeCode = code
      this.closeReason = reason.toString()
      this.wake()
    })
    ws.on("error", () => {})
  }

  /** Opens a stream with `token` and sends hello from the given cursors; an HTTP refusal rejects with UpgradeRefused. */
  static async connect(base: string, token: string, from: ConnectOptions = {}): Promise<StreamClient> {
    const ws = new WebSocket(base.replace(/^http/, "ws") + "/v1/stream", {
      headers: { authorization: `Bearer ${token}` },
      perMessageDeflate: false,
      ...(from.localAddress !== undefined && { localAddress: from.localAddress }),
    })
    await new Promise<void>((resolve, reject) => {
      ws.once("open", resolve)
      ws.once("error", reject)
      ws.once("unexpected-response", (_req, res) => {
        let text = ""
        res.setEncoding("utf8").on("data", (d: string) => (text += d))
        res.once("end", () => {
          reject(new UpgradeRefused(res.statusCode ?? 0, JSON.parse(text) as ErrorBody))
          ws.terminate() // its "error" goes to the listener above, after the rejection
        })
      })
    })
    const c = new StreamClient(ws)
    for (const [g, s] of from.groups ?? []) c.cursors.set(g, s)
    c.inboxCursor = from.inboxAfter ?? 0
    if (from.hello === false) return c
    ws.send(
      JSON.stringify({
        type: "hello",
        groups: [...c.cursors].map(([groupId, after]) => ({ groupId, after })),
        inboxAfter: c.inboxCursor,
      }),
    )
    return c
  }

  private wake(): void {
    const w = this.waiters
    this.waiters = []
    for (const f of w) f()
  }

  /** Resolves once `pred()` holds; fails after `timeoutMs`. */
  async until(pred: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (!pred()) {
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`timed out waiting for ${what}`)
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left)
        this.waiters.push(() => {
          clearTimeout(t)
          resolve()
        })
      })
    }
  }

  entries(groupId?: string) {
    return this.frames.flatMap((f) =>
      f.type === "entry" && (groupId === undefined || f.groupId === groupId) ? [f] : [],
    )
  }

  inbox() {
    return this.frames.flatMap((f) => (f.type === "inbox" ? [f] : []))
  }

  /** `pruned` frames (entries deleted by retention before this client got them). */
  pruned(groupId?: string) {
    return this.frames.flatMap((f) =>
      f.type === "pruned" && (groupId === undefined || f.groupId === groupId) ? [f] : [],
    )
  }

  /** `inboxExpired` frames (inbox items deleted by retention unacknowledged). */
  inboxExpired() {
    return this.frames.flatMap((f) => (f.type === "inboxExpired" ? [f] : []))
  }

  caughtUp(): boolean {
    return this.frames.some((f) => f.type === "caughtUp")
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.ws.close()
    await this.until(() => this.closed, "close")
  }

  /** Cuts the TCP connection without a close handshake (a killed client). */
  kill(): void {
    this.ws.terminate()
  }
}
