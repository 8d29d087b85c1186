/** ServerStore on better-sqlite3. Writes go through the WriteBatcher (group commit); reads run directly. */
import { AppError } from "../../rpc-schema/errors.js"
import { openDatabase, type Db } from "./database.js"
import { InboxWriter } from "./inboxWriter.js"
import { KeySpender } from "./keySpending.js"
import { LapseReleaser } from "./lapses.js"
import type {
  GcReport,
  KeyCounts,
  ServerStore,
  StoreUploadOutcome,
  StoredReservation,
  StoredSpend,
  ValidKeyPackage,
} from "./types.js"
import { WriteBatcher } from "./writeBatcher.js"

interface KeyRow {
  ref: string
  owner: string
  data: Buffer
  not_after: number
  last_resort: number
  state: string
  reservation_id: string | null
}

export class SqliteStore implements ServerStore {
  readonly db: Db
  /** The database's one group-commit queue; the delivery store shares it (one batcher per database). */
  readonly writes: WriteBatcher
  private readonly spender: KeySpender
  private readonly lapses: LapseReleaser
  private readonly inbox: InboxWriter
  private readonly s

  constructor(path: string) {
    this.db = openDatabase(path)
    this.writes = new WriteBatcher(this.db)
    this.spender = new KeySpender(this.db)
    this.lapses = new LapseReleaser(this.db)
    this.inbox = new InboxWriter(this.db)
    const db = this.db
    this.s = {
      insertUser: db.prepare("INSERT INTO users (username, signature_key, created_at) VALUES (?, ?, ?)"),
      userKey: db.prepare<[string], { signature_key: Buffer }>("SELECT signature_key FROM users WHERE username = ?"),
      insertChallenge: db.prepare("INSERT INTO challenges (id, username, nonce, expires_at) VALUES (?, ?, ?, ?)"),
      outstandingChallenges: db.prepare<[string, number], { n: number; first: number | null }>(
        "SELECT count(*) AS n, min(expires_at) AS first FROM challenges WHERE username = ? AND expires_at > ?",
      ),
      sharesGroup: db.prepare<[string, string], { one: number }>(
        `SELECT 1 AS one FROM group_members a JOIN group_members b ON b.group_id = a.group_id
         WHERE a.username = ? AND a.removed_seq IS NULL AND b.username = ? AND b.removed_seq IS NULL LIMIT 1`,
      ),
      takeChallenge: db.prepare<[string], { username: string; nonce: Buffer; expires_at: number }>(
        "DELETE FROM challenges WHERE id = ? RETURNING username, nonce, expires_at",
      ),
      insertSession: db.prepare("INSERT INTO sessions (token_hash, username, expires_at) VALUES (?, ?, ?)"),
      session: db.prepare<[Uint8Array, number], { username: string; expires_at: number }>(
        "SELECT username, expires_at FROM sessions WHERE token_hash = ? AND expires_at > ?",
      ),
      deleteSession: db.prepare("DELETE FROM sessions WHERE token_hash = ?"),
      keyByRef: db.prepare<[string], KeyRow>(
        "SELECT ref, owner, data, not_after, last_resort, state, reservation_id FROM keypackages WHERE ref = ?",
      ),
      initKeyRef: db.prepare<[Uint8Array], { ref: string }>("SELECT ref FROM init_keys WHERE init_key = ?"),
      insertInitKey: db.prepare("INSERT INTO init_keys (init_key, ref) VALUES (?, ?)"),
      heldCount: db.prepare<[string, number], { n: number }>(
        `SELECT count(*) AS n FROM keypackages
         WHERE owner = ? AND last_resort = 0 AND state IN ('available', 'reserved') AND not_after > ?`,
      ),
      nextSeq: db.prepare<[], { seq: number }>("SELECT coalesce(max(seq), 0) + 1 AS seq FROM keypackages"),
      insertKey: db.prepare(
        `INSERT INTO keypackages (ref, owner, cipher_suite, data, not_after, last_resort, state, uploaded_at, seq)
         VALUES (?, ?, ?, ?, ?, ?, 'available', ?, ?)`,
      ),
      retireLastResort: db.prepare(
        "UPDATE keypackages SET state = 'retired' WHERE owner = ? AND cipher_suite = ? AND last_resort = 1 AND state = 'available'",
      ),
      takeOldest: db.prepare<[string, string, number, string, number, number], { ref: string; data: Buffer }>(
        `UPDATE keypackages SET state = 'reserved', reservation_id = ?, reserved_by = ?, reserved_until = ?
         WHERE ref = (SELECT ref FROM keypackages
                      WHERE owner = ? AND cipher_suite = ? AND state = 'available' AND last_resort = 0 AND not_after > ?
                      ORDER BY seq LIMIT 1)
         RETURNING ref, data`,
      ),
      lastResort: db.prepare<[string, number, number], { ref: string; data: Buffer }>(
        `SELECT ref, data FROM keypackages
         WHERE owner = ? AND cipher_suite = ? AND last_resort = 1 AND state = 'available' AND not_after > ?`,
      ),
      availableCount: db.prepare<[string, number, number], { n: number }>(
        `SELECT count(*) AS n FROM keypackages
         WHERE owner = ? AND cipher_suite = ? AND state = 'available' AND last_resort = 0 AND not_after > ?`,
      ),
      insertReservation: db.prepare(
        "INSERT INTO reservations (id, ref, owner, requester, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
      ),
      deleteKey: db.prepare("DELETE FROM keypackages WHERE ref = ?"),
      audit: db.prepare("INSERT INTO audit (at, action, owner, ref, actor, reservation_id) VALUES (?, ?, ?, ?, ?, ?)"),
      counts: db.prepare<
        [{ now: number; soon: number; owner: string }],
        { available: number; reserved: number; spent: number; expired: number; soon: number; last: number | null }
      >(
        `SELECT
           coalesce(sum(not_after > @now AND (state = 'available' OR (state = 'reserved' AND reserved_until <= @now))), 0)
             AS available,
           coalesce(sum(state = 'reserved' AND reserved_until > @now AND not_after > @now), 0) AS reserved,
           coalesce(sum(state = 'spent'), 0) AS spent,
           coalesce(sum(state IN ('available', 'reserved') AND not_after <= @now), 0) AS expired,
           coalesce(sum(state = 'available' AND not_after > @now AND not_after <= @soon), 0) AS soon,
           max(uploaded_at) AS last
         FROM keypackages WHERE owner = @owner AND last_resort = 0`,
      ),
      lastResortOf: db.prepare<[string, number], { ref: string; not_after: number }>(
        `SELECT ref, not_after FROM keypackages WHERE owner = ? AND last_resort = 1 AND state = 'available'
         AND not_after > ? ORDER BY seq DESC LIMIT 1`,
      ),
      heldRefs: db.prepare<[{ owner: string; now: number }], { ref: string; reserved: number }>(
        `SELECT ref, (state = 'reserved' AND reserved_until > @now) AS reserved FROM keypackages
         WHERE owner = @owner AND last_resort = 0 AND state IN ('available', 'reserved') AND not_after > @now
         ORDER BY ref`,
      ),
      deleteExpired: db.prepare<[number, number], { ref: string; owner: string }>(
        `DELETE FROM keypackages WHERE not_after <= ? AND NOT (state = 'reserved' AND reserved_until > ?)
         RETURNING ref, owner`,
      ),
      deleteSpent: db.prepare<[number], { ref: string }>(
        "DELETE FROM keypackages WHERE state = 'spent' AND spent_at <= ? RETURNING ref",
      ),
      deleteOldReservations: db.prepare("DELETE FROM reservations WHERE expires_at <= ?"),
      deleteOldChallenges: db.prepare("DELETE FROM challenges WHERE expires_at <= ?"),
      deleteOldSessions: db.prepare("DELETE FROM sessions WHERE expires_at <= ?"),
    }
  }

  createUser(username: string, signatureKey: Uint8Array, now: number): Promise<void> {
    return this.writes.run(() => {
      if (this.s.userKey.get(username)) throw new AppError("username_taken", `user name "${username}" is taken`)
      this.s.insertUser.run(username, signatureKey, now)
    })
  }

  async userKey(username: string): Promise<Uint8Array | undefined> {
    const row = this.s.userKey.get(username)
    return row && new Uint8Array(row.signature_key)
  }

  createChallenge(
    id: string,
    username: string,
    nonce: Uint8Array,
    expiresAt: number,
    now: number,
    max: number,
  ): Promise<number | undefined> {
    return this.writes.run(() => {
      const open = this.s.outstandingChallenges.get(username, now)!
      if (open.n >= max) return open.first!
      this.s.insertChallenge.run(id, username, nonce, expiresAt)
      return undefined
    })
  }

  async sharesGroup(a: string, b: string): Promise<boolean> {
    return this.s.sharesGroup.get(a, b) !== undefined
  }

  consumeChallenge(id: string, now: number): Promise<{ username: string; nonce: Uint8Array } | undefined> {
    return this.writes.run(() => {
      const row = this.s.takeChallenge.all(id)[0]
      if (!row || row.expires_at <= now) return undefined
      return { username: row.username, nonce: new Uint8Array(row.nonce) }
    })
  }

  createSession(tokenHash: Uint8Array, username: string, expiresAt: number): Promise<void> {
    return this.writes.run(() => void this.s.insertSession.run(tokenHash, username, expiresAt))
  }

  async session(tokenHash: Uint8Array, now: number): Promise<{ username: string; expiresAt: number } | undefined> {
    const row = this.s.session.get(tokenHash, now)
    return row && { username: row.username, expiresAt: row.expires_at }
  }

  deleteSession(tokenHash: Uint8Array): Promise<void> {
    return this.writes.run(() => void this.s.deleteSession.run(tokenHash))
  }

  addKeyPackages(owner: string, items: ValidKeyPackage[], cap: number, now: number): Promise<StoreUploadOutcome[]> {
    return this.writes.run(() => {
      let held = this.s.heldCount.get(owner, now)!.n
      let seq = this.s.nextSeq.get()!.seq
      return items.map((kp): StoreUploadOutcome => {
        const existing = this.s.keyByRef.get(kp.ref)
        if (existing) return { status: "duplicate", ref: kp.ref, notAfter: existing.not_after }
        if (this.s.initKeyRef.get(kp.initKey)) return { status: "rejected", reason: "init_key_reused" }
        if (held >= cap) return { status: "rejected", reason: "cap_exceeded" }
        this.s.insertInitKey.run(kp.initKey, kp.ref)
        this.s.insertKey.run(kp.ref, owner, kp.cipherSuite, kp.data, kp.notAfter, 0, now, seq++)
        held++
        return { status: "accepted", ref: kp.ref, notAfter: kp.notAfter }
      })
    })
  }

  setLastResort(owner: string, kp: ValidKeyPackage, now: number): Promise<StoreUploadOutcome> {
    return this.writes.run((): StoreUploadOutcome => {
      const existing = this.s.keyByRef.get(kp.ref)
      if (existing) return { status: "duplicate", ref: kp.ref, notAfter: existing.not_after }
      if (this.s.initKeyRef.get(kp.initKey)) return { status: "rejected", reason: "init_key_reused" }
      // The old last-resort key is retired, not deleted: a reservation of it may still be spent.
      this.s.retireLastResort.run(owner, kp.cipherSuite)
      this.s.insertInitKey.run(kp.initKey, kp.ref)
      this.s.insertKey.run(kp.ref, owner, kp.cipherSuite, kp.data, kp.notAfter, 1, now, this.s.nextSeq.get()!.seq)
      return { status: "accepted", ref: kp.ref, notAfter: kp.notAfter }
    })
  }

  reserve(
    owner: string,
    cipherSuite: number,
    requester: string,
    reservationId: string,
    now: number,
    expiresAt: number,
    lowWatermark: number,
  ): Promise<StoredReservation> {
    return this.writes.run((): StoredReservation => {
      if (!this.s.userKey.get(owner)) throw new AppError("unknown_user", `no user "${owner}"`)
      this.lapses.release(now, owner)
      let lastResort = false
      let key = this.s.takeOldest.all(reservationId, requester, expiresAt, owner, cipherSuite, now)[0]
      if (!key) {
        key = this.s.lastResort.get(owner, cipherSuite, now)
        lastResort = true
      }
      if (!key) throw new AppError("no_keypackage_available", `${owner} has no KeyPackage available`)
      this.s.insertReservation.run(reservationId, key.ref, owner, requester, now, expiresAt)
      this.s.audit.run(now, "reserve", owner, key.ref, requester, reservationId)
      const remainingAvailable = this.s.availableCount.get(owner, cipherSuite, now)!.n
      // The owner's notifications are stored with the reservation itself (its stream pushes them).
      const event = { ref: key.ref, by: requester, lastResort, remainingAvailable }
      this.inbox.add(owner, { kind: "keyReserved", ...event }, now)
      if (remainingAvailable < lowWatermark)
        this.inbox.add(owner, { kind: "poolLow", available: remainingAvailable }, now)
      return { ref: key.ref, data: new Uint8Array(key.data), reservationId, expiresAt, lastResort, remainingAvailable }
    })
  }

  spend(ref: string, reservationId: string, requester: string, now: number): Promise<StoredSpend> {
    return this.writes.run(() => this.spender.spend(ref, reservationId, requester, now))
  }

  withdraw(owner: string, ref: string, now: number): Promise<void> {
    return this.writes.run(() => {
      const key = this.s.keyByRef.get(ref)
      if (!key || key.owner !== owner) throw new AppError("keypackage_not_found", "no KeyPackage with that ref")
      if (key.state === "spent") throw new AppError("already_spent", "that KeyPackage was spent already")
      this.lapses.release(now, owner)
      if (this.s.keyByRef.get(ref)!.state === "reserved") {
        throw new AppError("keypackage_reserved", "that KeyPackage is reserved; it may be in use")
      }
      this.s.deleteKey.run(ref)
      this.s.audit.run(now, "withdraw", owner, ref, owner, null)
    })
  }

  async keyCounts(owner: string, now: number, soonMs: number): Promise<KeyCounts> {
    const c = this.s.counts.get({ now, soon: now + soonMs, owner })!
    const lr = this.s.lastResortOf.get(owner, now)
    return {
      available: c.available,
      reserved: c.reserved,
      spent: c.spent,
      expired: c.expired,
      expiringSoon: c.soon,
      lastUpload: c.last,
      lastResort: lr ? { ref: lr.ref, notAfter: lr.not_after } : null,
      heldRefs: this.s.heldRefs.all({ owner, now }).map((r) => r.ref),
    }
  }

  async keyRefs(owner: string, now: number): Promise<{ available: string[]; reserved: string[] }> {
    const rows = this.s.heldRefs.all({ owner, now })
    return {
      available: rows.filter((r) => !r.reserved).map((r) => r.ref),
      reserved: rows.filter((r) => r.reserved).map((r) => r.ref),
    }
  }

  collectGarbage(now: number, retentionMs: number): Promise<GcReport> {
    return this.writes.run((): GcReport => {
      const lapsed = this.lapses.release(now)
      const expired = this.s.deleteExpired.all(now, now)
      for (const e of expired) this.s.audit.run(now, "expire", e.owner, e.ref, null, null)
      const spent = this.s.deleteSpent.all(now - retentionMs)
      this.s.deleteOldReservations.run(now - retentionMs)
      this.s.deleteOldChallenges.run(now)
      this.s.deleteOldSessions.run(now)
      return { expiredKeys: expired.length, lapsedReservations: lapsed, spentKeys: spent.length }
    })
  }

  close(): void {
    this.db.close()
  }
}
