/**
 * The doorbell between mls-server instances on one PostgreSQL database (LISTEN/NOTIFY). The tables are the truth;
 * a ring only says where to look: a group log got an entry, devices' inboxes got items, a device was removed from a
 * group, a session was revoked, a device removed. Each transaction rings after its COMMIT (database.ts), naming its
 * instance; every other instance's listener hands the rings to its stream hub, which wakes the connections
 * concerned, and they read the store from their cursors. A ring carries the entry's frame when it fits, so that the
 * hub can send it on its fast path without reading it back.
 *
 * NOTIFY is delivered to listeners in commit order, and an instance that missed rings (its listening connection
 * dropped) wakes every stream when it listens again, so nothing is left unread.
 */
import pg from "pg"

export const doorbellChannel = "mls_doorbell"

export type Ring =
  /** A log entry was appended; `frame` is its entry frame, when it fits in the payload. */
  | { k: "entry"; groupId: string; seq: number; frame?: string }
  /** `devices` were removed from the group by the Commit at `seq`. */
  | { k: "ended"; groupId: string; seq: number; devices: string[] }
  /** These devices' inboxes have new items. */
  | { k: "inbox"; devices: string[] }
  /** `device` joined the group by its external Commit at `seq`. */
  | { k: "joined"; groupId: string; seq: number; device: string }
  /** `device` created the group. */
  | { k: "created"; groupId: string; device: string }
  /** The session (id: its token hash, base64url) of `device` was revoked. */
  | { k: "session"; device: string; session: string }
  /** The device was removed from its account. */
  | { k: "device"; device: string }

/** What the listener hands the rings of other instances to (the stream hub). */
export interface RingHandler {
  ring(r: Ring): void
  /** The listener missed rings (it reconnected): every connection looks at the store again. */
  wakeAll(): void
}

/** NOTIFY payloads are limited to 8000 bytes; leave room for the envelope. */
const maxPayload = 7800

/** The payloads that carry `rings` from `instance`: entry frames dropped, then rings spread, to fit. */
export function encodeRings(instance: string, rings: readonly Ring[]): string[] {
  if (rings.length === 0) return []
  const fit = rings.map((r) =>
    r.k === "entry" && r.frame !== undefined && r.frame.length > maxPayload / 2 ? { ...r, frame: undefined } : r,
  )
  const payloads: string[] = []
  let batch: Ring[] = []
  let size = 0
  const flush = () => {
    if (batch.length > 0) payloads.push(JSON.stringify({ from: instance, rings: batch }))
    batch = []
    size = 0
  }
  for (const r of fit) {
    const n = JSON.stringify(r).length
    if (size + n > maxPayload) flush()
    // A ring longer than a payload on its own (an inbox ring naming hundreds of devices) is split up.
    if (n > maxPayload && r.k === "inbox" && r.devices.length > 1) {
      const half = Math.ceil(r.devices.length / 2)
      payloads.push(...encodeRings(instance, [{ k: "inbox", devices: r.devices.slice(0, half) }]))
      payloads.push(...encodeRings(instance, [{ k: "inbox", devices: r.devices.slice(half) }]))
      continue
    }
    batch.push(r)
    size += n
  }
  flush()
  return payloads
}

/**
 * Sends this instance's rings, on a connection of its own whose commits do not wait for the WAL flush. A NOTIFY is a
 * transaction of its own after the COMMIT it reports, and PostgreSQL serialises notifying transactions through their
 * commit: waiting for a flush there would queue every write of every instance behind the disk, one flush per ring.
 * A ring is a wake-up, not data (see the module comment), so its durability is not needed. Rings handed in while one
 * NOTIFY is in flight go together in the next one, sent when it returns.
 */
export class DoorbellSender {
  private readonly client: pg.Pool
  private queued: Ring[] = []
  /** The NOTIFY that will carry the rings queued now. */
  private next: Promise<void> | undefined
  /** The NOTIFY being sent. */
  private inFlight: Promise<void> = Promise.resolve()
  /** Told of a ring that could not be sent (the connection failed): the change is stored, one wake-up lost. */
  onError: (err: unknown) => void = () => {}

  constructor(
    url: string,
    private readonly instance: string,
  ) {
    this.client = new pg.Pool({ connectionString: url, max: 1, options: "-c synchronous_commit=off" })
    this.client.on("error", () => {})
  }

  /** Sends `rings` with whatever else is queued; resolves once PostgreSQL took them (or failed to: never rejects). */
  send(rings: readonly Ring[]): Promise<void> {
    if (rings.length === 0) return Promise.resolve()
    this.queued.push(...rings)
    return (this.next ??= this.sendNext())
  }

  private async sendNext(): Promise<void> {
    // The rings of the transactions that commit while a NOTIFY is in flight, or in this turn of the event loop, go
    // together in the next one.
    await this.inFlight
    await new Promise<void>((resolve) => setImmediate(resolve))
    const rings = this.queued
    this.queued = []
    this.next = undefined
    this.inFlight = this.notify(rings)
    await this.inFlight
  }

  private async notify(rings: readonly Ring[]): Promise<void> {
    try {
      for (const payload of encodeRings(this.instance, rings)) {
        await this.client.query({ name: "ring", text: "SELECT pg_notify($1, $2)", values: [doorbellChannel, payload] })
      }
    } catch (err) {
      this.onError(err)
    }
  }

  close(): Promise<void> {
    return this.client.end()
  }
}

/** Listens on its own connection (not the pool's) and hands other instances' rings to `handler`. */
export class DoorbellListener {
  private client: pg.Client | undefined
  private closed = false
  private retry: NodeJS.Timeout | undefined

  private constructor(
    private readonly url: string,
    private readonly instance: string,
    private readonly handler: RingHandler,
    private readonly onError: (err: unknown) => void,
  ) {}

  static async start(url: string, instance: string, handler: RingHandler, onError: (err: unknown) => void) {
    const listener = new DoorbellListener(url, instance, handler, onError)
    await listener.connect()
    return listener
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.url })
    client.on("notification", (n) => {
      if (n.channel !== doorbellChannel || n.payload === undefined) return
      const { from, rings } = JSON.parse(n.payload) as { from: string; rings: Ring[] }
      if (from === this.instance) return
      for (const r of rings) this.handler.ring(r)
    })
    client.on("error", (err) => this.lost(client, err))
    client.on("end", () => this.lost(client, new Error("doorbell connection ended")))
    await client.connect()
    await client.query(`LISTEN ${doorbellChannel}`)
    this.client = client
  }

  /** The listening connection is gone: listen again shortly, then wake every stream for what it missed. */
  private lost(client: pg.Client, err: unknown): void {
    if (this.closed || this.client !== client) return
    this.client = undefined
    client.end().catch(() => {})
    this.onError(err)
    const again = () => {
      this.retry = setTimeout(() => {
        if (this.closed) return
        this.connect().then(
          () => this.handler.wakeAll(),
          (e: unknown) => (this.onError(e), again()),
        )
      }, 1000)
    }
    again()
  }

  async close(): Promise<void> {
    this.closed = true
    clearTimeout(this.retry)
    const client = this.client
    this.client = undefined
    await client?.end().catch(() => {})
  }
}
