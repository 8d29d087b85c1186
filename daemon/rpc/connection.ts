/** One client connection on the socket: writes NDJSON, holds its event subscription. */
import type { Socket } from "node:net"
import type { EventName } from "../../rpc-schema/daemon/events.js"
import type { StoredEvent } from "../store/eventStore.js"

/** A client that reads this slowly is dropped rather than buffered for without bound. */
const maxBuffered = 8 * 1024 * 1024

export class Connection {
  private names: ReadonlySet<string> | undefined
  /** Events waiting for the subscribe answer to be written first (replay, then live ones meanwhile). */
  private pending: StoredEvent[] | undefined
  private lastSent = 0

  constructor(
    readonly id: number,
    private readonly socket: Socket,
  ) {}

  write(message: unknown): void {
    if (this.socket.destroyed) return
    if (this.socket.writableLength > maxBuffered) {
      this.socket.destroy()
      return
    }
    this.socket.write(JSON.stringify(message) + "\n")
  }

  /** Subscribes to `names`; `replay` is sent once the answer to events.subscribe is out (see `flush`). */
  subscribe(names: readonly EventName[], replay: StoredEvent[]): void {
    this.names = new Set(names)
    this.pending = [...(this.pending ?? []), ...replay]
  }

  unsubscribe(): void {
    this.names = undefined
    this.pending = undefined
  }

  get subscribed(): boolean {
    return this.names !== undefined
  }

  /** A live event: sent now, or queued behind a replay not yet flushed. */
  deliver(e: StoredEvent): void {
    if (!this.names?.has(e.name)) return
    if (this.pending) this.pending.push(e)
    else this.send(e)
  }

  /** Called after each answer is written: sends what a fresh subscription queued. */
  flush(): void {
    const queued = this.pending
    if (!queued) return
    this.pending = undefined
    for (const e of queued) this.send(e)
  }

  private send(e: StoredEvent): void {
    if (e.id <= this.lastSent) return
    this.lastSent = e.id
    this.write({ jsonrpc: "2.0", method: e.name, params: e.params })
  }

  close(): void {
    this.socket.destroy()
  }

  /** Ends the connection after what was written so far; reads nothing more from it. */
  end(): void {
    this.socket.pause()
    this.socket.end()
    setTimeout(() => this.socket.destroy(), 1000).unref()
  }
}
