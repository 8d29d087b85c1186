/**
 * Routes what the delivery service stores to the open stream connections: by group for log
 * entries, by device for inbox changes. Everything it is told has been committed already. It also
 * runs the ping round that drops dead connections, and ends the streams of revoked sessions.
 */
import type { Session, SessionListener } from "../services/auth.js"
import { closeReasons } from "../../rpc-schema/server/ws.js"
import type { CommitOutcome, StoredEntry } from "../store/types.js"
import type { StreamConnection, SubscriptionIndex } from "./connection.js"
import { entryFrame } from "./frames.js"

export class StreamHub implements SubscriptionIndex, SessionListener {
  /** Connections by device id. */
  private readonly byDevice = new Map<string, Set<StreamConnection>>()
  private readonly byGroup = new Map<string, Set<StreamConnection>>()
  private readonly sockets = new Map<StreamConnection, { ping(): void; terminate(): void }>()
  private readonly pinger: NodeJS.Timeout | undefined

  constructor(pingIntervalMs: number) {
    this.pinger = pingIntervalMs > 0 ? setInterval(() => this.pingRound(), pingIntervalMs).unref() : undefined
  }

  add(conn: StreamConnection, socket: { ping(): void; terminate(): void }): void {
    this.sockets.set(conn, socket)
    let set = this.byDevice.get(conn.device)
    if (!set) this.byDevice.set(conn.device, (set = new Set()))
    set.add(conn)
  }

  remove(conn: StreamConnection): void {
    this.sockets.delete(conn)
    const set = this.byDevice.get(conn.device)
    set?.delete(conn)
    if (set?.size === 0) this.byDevice.delete(conn.device)
    conn.dispose()
  }

  subscribe(conn: StreamConnection, groupId: string): void {
    let set = this.byGroup.get(groupId)
    if (!set) this.byGroup.set(groupId, (set = new Set()))
    set.add(conn)
  }

  unsubscribe(conn: StreamConnection, groupId: string): void {
    const set = this.byGroup.get(groupId)
    set?.delete(conn)
    if (set?.size === 0) this.byGroup.delete(groupId)
  }

  /** A stored application or proposal message (or a Commit, through `commit`). */
  entry(e: StoredEntry): void {
    const subs = this.byGroup.get(e.groupId)
    if (!subs) return
    // Serialised once; every subscriber gets the same bytes.
    const frame = Buffer.from(entryFrame(e))
    for (const conn of subs) conn.entry(e.groupId, e.seq, frame)
  }

  /** A stored Commit: its entry first, then the roster changes and their inbox items. */
  commit(o: CommitOutcome): void {
    this.entry(o.entry)
    for (const device of o.removed)
      for (const conn of this.byDevice.get(device) ?? []) conn.ended(o.entry.groupId, o.entry.seq)
    for (const device of [...o.added, ...o.removed]) this.inbox(device)
    // Joined by the Commit itself (no Welcome to wait for): streamed from the entry after it.
    if (o.joinedExternally !== undefined)
      for (const conn of this.byDevice.get(o.joinedExternally) ?? []) conn.joined(o.entry.groupId, o.entry.seq)
  }

  /** The inbox of device `device` has new items. */
  inbox(device: string): void {
    for (const conn of this.byDevice.get(device) ?? []) conn.changed()
  }

  groupCreated(groupId: string, creator: string): void {
    for (const conn of this.byDevice.get(creator) ?? []) conn.created(groupId)
  }

  sessionRevoked(session: Session): void {
    for (const conn of this.byDevice.get(session.device.deviceId) ?? [])
      if (conn.session.id === session.id) conn.revoked(closeReasons.sessionRevoked)
  }

  deviceRemoved(deviceId: string): void {
    for (const conn of this.byDevice.get(deviceId) ?? []) conn.revoked(closeReasons.deviceRemoved)
  }

  get connectionCount(): number {
    return this.sockets.size
  }

  private pingRound(): void {
    for (const [conn, socket] of this.sockets) {
      if (!conn.alive) {
        socket.terminate()
        continue
      }
      conn.alive = false
      socket.ping()
    }
  }

  close(): void {
    clearInterval(this.pinger)
  }
}
