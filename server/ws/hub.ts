/**
 * Routes what the delivery service stores to the open stream connections: by group for log
 * entries, by device for inbox changes. Everything it is told has been committed already. It also
 * runs the ping round that drops dead connections, and ends the streams of revoked sessions.
 */
import type { Session, SessionListener } from "../services/auth.js"
import { closeReasons } from "../../rpc-schema/server/ws.js"
import type { Ring, RingHandler } from "../store/postgres/doorbell.js"
import type { CommitOutcome, StoredEntry } from "../store/types.js"
import type { StreamConnection, SubscriptionIndex } from "./connection.js"
import { entryFrame } from "./frames.js"

/**
 * How long a group's live entries wait for an earlier seq that has not arrived. With several instances, an entry
 * stored here reaches the hub at once and one stored just before it on another instance only with that instance's
 * ring; sent out of order, every subscriber would see a gap and read the store. When the wait ends (a lost ring, an
 * entry no one rang), the held entries go out as they are and each connection that sees the gap reads the store.
 */
const gapWaitMs = 100
/** More held entries than this go out at once, gap or not. */
const maxHeld = 256

/** The live entries of one group, put back in log order. */
interface GroupOrder {
  /** The seq the hub sends next: one past the last it sent. */
  next: number
  /** Entries past a gap, by seq; a frame undefined when the entry was too large to ring. */
  held: Map<number, string | undefined>
  gapTimer: NodeJS.Timeout | undefined
}

export class StreamHub implements SubscriptionIndex, SessionListener, RingHandler {
  /** Connections by device id. */
  private readonly byDevice = new Map<string, Set<StreamConnection>>()
  private readonly byGroup = new Map<string, Set<StreamConnection>>()
  /** For each group with subscribers here, the live entries' order. */
  private readonly order = new Map<string, GroupOrder>()
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
    if (set?.size !== 0) return
    this.byGroup.delete(groupId)
    clearTimeout(this.order.get(groupId)?.gapTimer)
    this.order.delete(groupId)
  }

  /** A stored application or proposal message (or a Commit, through `commit`). */
  entry(e: StoredEntry): void {
    // Serialised once; every subscriber gets the same bytes.
    this.entryFrame(e.groupId, e.seq, entryFrame(e))
  }

  /** Sends a group's live entries in seq order, holding those that arrive past a gap (see `gapWaitMs`). */
  private entryFrame(groupId: string, seq: number, frame: string | undefined): void {
    if (!this.byGroup.has(groupId)) return
    let o = this.order.get(groupId)
    if (!o) this.order.set(groupId, (o = { next: seq, held: new Map(), gapTimer: undefined }))
    if (seq > o.next) {
      o.held.set(seq, frame)
      if (o.held.size > maxHeld) return this.releaseHeld(groupId, o)
      o.gapTimer ??= setTimeout(() => this.releaseHeld(groupId, o), gapWaitMs).unref()
      return
    }
    // An entry from before the hub's order began, or late after its gap was given up on: the cursors decide.
    if (seq < o.next) return this.send(groupId, seq, frame)
    this.send(groupId, seq, frame)
    o.next++
    while (o.held.has(o.next)) {
      this.send(groupId, o.next, o.held.get(o.next))
      o.held.delete(o.next++)
    }
    if (o.held.size === 0 && o.gapTimer) {
      clearTimeout(o.gapTimer)
      o.gapTimer = undefined
    }
  }

  /** Gives up waiting for a group's gap: its held entries go out in seq order. */
  private releaseHeld(groupId: string, o: GroupOrder): void {
    clearTimeout(o.gapTimer)
    o.gapTimer = undefined
    const seqs = [...o.held.keys()].sort((a, b) => a - b)
    for (const seq of seqs) this.send(groupId, seq, o.held.get(seq))
    o.held.clear()
    o.next = Math.max(o.next, seqs.at(-1)! + 1)
  }

  private send(groupId: string, seq: number, frame: string | undefined): void {
    const subs = this.byGroup.get(groupId)
    if (!subs) return
    if (frame === undefined) {
      for (const conn of subs) conn.changed()
      return
    }
    const bytes = Buffer.from(frame)
    for (const conn of subs) conn.entry(groupId, seq, bytes)
  }

  /** A stored Commit: its entry first, then the roster changes and their inbox items. */
  commit(o: CommitOutcome): void {
    this.entry(o.entry)
    this.ended(o.entry.groupId, o.entry.seq, o.removed)
    for (const device of [...o.added, ...o.removed]) this.inbox(device)
    if (o.joinedExternally !== undefined) this.joined(o.entry.groupId, o.entry.seq, o.joinedExternally)
  }

  /** `device` joined by its external Commit at `seq` (no Welcome to wait for): streamed from the entry after it. */
  private joined(groupId: string, seq: number, device: string): void {
    for (const conn of this.byDevice.get(device) ?? []) conn.joined(groupId, seq)
  }

  private ended(groupId: string, seq: number, devices: readonly string[]): void {
    for (const device of devices) for (const conn of this.byDevice.get(device) ?? []) conn.ended(groupId, seq)
  }

  /**
   * What another instance on the same PostgreSQL database stored (store/postgres/doorbell.ts): the same calls as
   * this instance's own services make after their commits. A ring without the entry's frame (too large to carry)
   * sends the group's subscribers to the store.
   */
  ring(r: Ring): void {
    switch (r.k) {
      case "entry":
        return this.entryFrame(r.groupId, r.seq, r.frame)
      case "ended":
        return this.ended(r.groupId, r.seq, r.devices)
      case "inbox":
        for (const device of r.devices) this.inbox(device)
        return
      case "joined":
        return this.joined(r.groupId, r.seq, r.device)
      case "created":
        return this.groupCreated(r.groupId, r.device)
      case "session":
        for (const conn of this.byDevice.get(r.device) ?? [])
          if (conn.session.id === r.session) conn.revoked(closeReasons.sessionRevoked)
        return
      case "device":
        return this.deviceRemoved(r.device)
    }
  }

  /** Rings may have been missed: every connection reads the store from its cursors. */
  wakeAll(): void {
    // The entries of the missed rings will not arrive: what is held goes out, and each group's order starts again.
    for (const [groupId, o] of this.order) this.releaseHeld(groupId, o)
    this.order.clear()
    for (const conn of this.sockets.keys()) conn.changed()
  }

  /** The inbox of device `device` has new items. */
  inbox(device: string): void {
    for (const conn of this.byDevice.get(device) ?? []) conn.changed()
  }

  groupCreated(groupId: string, creator: string): void {
    for (const conn of this.byDevice.get(creator) ?? []) conn.created(groupId)
  }

  sessionRevoked(session: Session): void {
    this.ring({ k: "session", device: session.device.deviceId, session: session.id })
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
    for (const o of this.order.values()) clearTimeout(o.gapTimer)
  }
}
