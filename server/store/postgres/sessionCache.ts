/**
 * The sessions this instance found lately, so that an authenticated request costs no round trip for its token (the
 * key directory's reserve+spend pair made two of its ten). A session leaves the cache when it is revoked or its
 * device removed: here at once (PgStore), on the other instances when their listener hears the ring (doorbell.ts),
 * all of them when a listener missed rings. What a ring cannot reach (an instance that died between a COMMIT and its
 * ring) is bounded by the entries' short lifetime. Only sessions found are kept: an unknown token always asks the
 * database.
 */
import type { DeviceRef } from "../types.js"

export interface CachedSession {
  device: DeviceRef
  expiresAt: number
}

interface Entry {
  session: CachedSession
  /** performance.now() when read from the database. */
  readAt: number
}

export class SessionCache {
  private readonly entries = new Map<string, Entry>()
  /** Counts the forgets: an answer read while one happened may be stale, and is not kept. */
  private forgets = 0

  constructor(
    private readonly lifetimeMs = 5_000,
    private readonly maxEntries = 20_000,
  ) {}

  /** The session with token hash `id` (base64url) at `now`: from the cache, or `load`ed and kept. */
  async get(
    id: string,
    now: number,
    load: () => Promise<CachedSession | undefined>,
  ): Promise<CachedSession | undefined> {
    const entry = this.entries.get(id)
    if (entry && performance.now() - entry.readAt < this.lifetimeMs) {
      return now < entry.session.expiresAt ? entry.session : undefined
    }
    const forgets = this.forgets
    const readAt = performance.now()
    const session = await load()
    if (!session) this.entries.delete(id)
    else if (forgets === this.forgets) this.keep(id, { session, readAt })
    return session
  }

  private keep(id: string, entry: Entry): void {
    this.entries.delete(id)
    // Oldest first out: a Map iterates in insertion order.
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!)
    this.entries.set(id, entry)
  }

  forgetSession(id: string): void {
    this.forgets++
    this.entries.delete(id)
  }

  forgetDevice(deviceId: string): void {
    this.forgets++
    for (const [id, e] of this.entries) if (e.session.device.deviceId === deviceId) this.entries.delete(id)
  }

  forgetAll(): void {
    this.forgets++
    this.entries.clear()
  }
}
