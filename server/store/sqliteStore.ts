/** ServerStore on better-sqlite3. Writes go through the WriteBatcher (group commit); reads run directly. */
import { AppError } from "../../rpc-schema/errors.js"
import type { InboxItem } from "../../rpc-schema/server/http/inbox.js"
import { openDatabase, type Db } from "./database.js"
import { InboxWriter } from "./inboxWriter.js"
import { KeySpender } from "./keySpending.js"
import { LapseReleaser } from "./lapses.js"
import type {
  DeviceRef,
  DeviceRemoval,
  GcReport,
  KeyCounts,
  NewDevice,
  ServerStore,
  StoreUploadOutcome,
  StoredAccount,
  StoredDevice,
  StoredReservation,
  StoredSpend,
  ValidKeyPackage,
} from "./types.js"
import { sameBytes } from "../../shared/bytes.js"
import { WriteBatcher } from "./writeBatcher.js"
import { MemoryBuckets, type BucketRequest } from "../services/rateLimiter.js"

/** A device row with its account's handle, as both stores read it (postgres/pgStore.ts too). */
export interface DeviceRow {
  id: string
  user_id: string
  client_id: string
  handle: string
  login_key: Buffer
  mls_key: Buffer | null
  created_at: number
  removed_at: number | null
}

/** DeviceRow's columns of `devices d` joined with its account `a` (`deviceFrom`). */
export const deviceColumns =
  "d.id, d.user_id, d.client_id, a.handle, d.login_key, d.mls_key, d.created_at, d.removed_at"
export const deviceFrom = "FROM devices d JOIN accounts a ON a.user_id = d.user_id"

export const toDevice = (r: DeviceRow): StoredDevice => ({
  deviceId: r.id,
  userId: r.user_id,
  handle: r.handle,
  clientId: r.client_id,
  loginKey: new Uint8Array(r.login_key),
  mlsKey: r.mls_key && new Uint8Array(r.mls_key),
  createdAt: r.created_at,
  removedAt: r.removed_at,
})

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
  /** Rate-limit buckets: in memory, since one instance at a time serves a SQLite file. Shared with the delivery store. */
  readonly buckets = new MemoryBuckets()
  private readonly s

  /** `domain` names the devices a migration from before devices left without a client id (server migration 6). */
  constructor(path: string, domain: string) {
    this.db = openDatabase(path)
    this.db
      .prepare("UPDATE devices SET client_id = user_id || ':' || id || '@' || ? WHERE client_id IS NULL")
      .run(domain)
    this.writes = new WriteBatcher(this.db)
    this.spender = new KeySpender(this.db)
    this.lapses = new LapseReleaser(this.db)
    this.inbox = new InboxWriter(this.db)
    const db = this.db
    this.s = {
      insertAccount: db.prepare("INSERT INTO accounts (user_id, handle, created_at) VALUES (?, ?, ?)"),
      accountByHandle: db.prepare<[string], { user_id: string; handle: string; created_at: number }>(
        "SELECT user_id, handle, created_at FROM accounts WHERE handle = ?",
      ),
      accountById: db.prepare<[string], { user_id: string; handle: string; created_at: number }>(
        "SELECT user_id, handle, created_at FROM accounts WHERE user_id = ?",
      ),
      devicesOf: db.prepare<[string], DeviceRow>(
        `SELECT ${deviceColumns} ${deviceFrom} WHERE d.user_id = ? ORDER BY d.n`,
      ),
      device: db.prepare<[string], DeviceRow>(`SELECT ${deviceColumns} ${deviceFrom} WHERE d.id = ?`),
      insertDevice: db.prepare(
        "INSERT INTO devices (id, user_id, client_id, login_key, created_at) VALUES (?, ?, ?, ?, ?)",
      ),
      activeWithLoginKey: db.prepare<[Uint8Array], { id: string }>(
        "SELECT id FROM devices WHERE login_key = ? AND removed_at IS NULL LIMIT 1",
      ),
      activeCount: db.prepare<[string], { n: number }>(
        "SELECT count(*) AS n FROM devices WHERE user_id = ? AND removed_at IS NULL",
      ),
      markRemoved: db.prepare("UPDATE devices SET removed_at = ? WHERE id = ?"),
      bindMlsKey: db.prepare("UPDATE devices SET mls_key = ? WHERE id = ? AND mls_key IS NULL"),
      mlsKey: db.prepare<[string], { mls_key: Buffer | null }>("SELECT mls_key FROM devices WHERE id = ?"),
      deleteDeviceSessions: db.prepare("DELETE FROM sessions WHERE device = ?"),
      deleteDeviceChallenges: db.prepare("DELETE FROM challenges WHERE device = ?"),
      deleteDeviceLinkCodes: db.prepare("DELETE FROM link_codes WHERE created_by = ?"),
      deviceKeys: db.prepare<[string], { ref: string }>("SELECT ref FROM keypackages WHERE owner = ?"),
      insertLinkCode: db.prepare(
        "INSERT INTO link_codes (code_hash, user_id, created_by, expires_at) VALUES (?, ?, ?, ?)",
      ),
      openLinkCodes: db.prepare<[string, number], { n: number; first: number | null }>(
        "SELECT count(*) AS n, min(expires_at) AS first FROM link_codes WHERE user_id = ? AND expires_at > ?",
      ),
      takeLinkCode: db.prepare<[Uint8Array], { user_id: string; created_by: string; expires_at: number }>(
        "DELETE FROM link_codes WHERE code_hash = ? RETURNING user_id, created_by, expires_at",
      ),
      insertChallenge: db.prepare("INSERT INTO challenges (id, device, nonce, expires_at) VALUES (?, ?, ?, ?)"),
      outstandingChallenges: db.prepare<[string, number], { n: number; first: number | null }>(
        "SELECT count(*) AS n, min(expires_at) AS first FROM challenges WHERE device = ? AND expires_at > ?",
      ),
      sharesGroup: db.prepare<[string, string], { one: number }>(
        `SELECT 1 AS one FROM devices da JOIN group_members a ON a.device = da.id
         JOIN group_members b ON b.group_id = a.group_id JOIN devices db ON db.id = b.device
         WHERE da.user_id = ? AND a.removed_seq IS NULL AND db.user_id = ? AND b.removed_seq IS NULL LIMIT 1`,
      ),
      takeChallenge: db.prepare<[string], { device: string; nonce: Buffer; expires_at: number }>(
        "DELETE FROM challenges WHERE id = ? RETURNING device, nonce, expires_at",
      ),
      insertSession: db.prepare("INSERT INTO sessions (token_hash, device, expires_at) VALUES (?, ?, ?)"),
      session: db.prepare<[Uint8Array, number], DeviceRow & { expires_at: number }>(
        `SELECT ${deviceColumns}, s.expires_at ${deviceFrom}
         JOIN sessions s ON s.device = d.id WHERE s.token_hash = ? AND s.expires_at > ?`,
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
      deleteOldLinkCodes: db.prepare("DELETE FROM link_codes WHERE expires_at <= ?"),
      deleteOldSessions: db.prepare("DELETE FROM sessions WHERE expires_at <= ?"),
    }
  }

  createAccount(userId: string, handle: string, device: NewDevice, now: number): Promise<void> {
    return this.writes.run(() => {
      if (this.s.accountByHandle.get(handle)) throw new AppError("username_taken", `user name "${handle}" is taken`)
      this.s.insertAccount.run(userId, handle, now)
      this.s.insertDevice.run(device.deviceId, userId, device.clientId, device.loginKey, now)
    })
  }

  async account(ref: string): Promise<StoredAccount | undefined> {
    const a = this.s.accountByHandle.get(ref) ?? this.s.accountById.get(ref)
    if (!a) return undefined
    const devices = this.s.devicesOf.all(a.user_id).map(toDevice)
    return { userId: a.user_id, handle: a.handle, createdAt: a.created_at, devices }
  }

  async device(deviceId: string): Promise<StoredDevice | undefined> {
    const row = this.s.device.get(deviceId)
    return row && toDevice(row)
  }

  /** Puts `item` in the inbox of every active device of `userId` but `except`; answers their ids. Inside a transaction. */
  private tellDevices(userId: string, except: string, item: InboxItem, now: number): string[] {
    const others = this.s.devicesOf.all(userId).filter((d) => d.removed_at === null && d.id !== except)
    for (const d of others) this.inbox.add(d.id, item, now)
    return others.map((d) => d.id)
  }

  /** Adds a device and tells the account's other devices, inside a transaction. */
  private insertDevice(userId: string, device: NewDevice, byClientId: string, now: number): string[] {
    if (this.s.activeWithLoginKey.get(device.loginKey)) {
      throw new AppError("conflict", "that login key is in use by a device already; every device has its own")
    }
    this.s.insertDevice.run(device.deviceId, userId, device.clientId, device.loginKey, now)
    const item = { kind: "deviceAdded" as const, deviceId: device.deviceId, clientId: device.clientId, byClientId }
    return this.tellDevices(userId, device.deviceId, item, now)
  }

  addDevice(userId: string, device: NewDevice, by: DeviceRef, now: number): Promise<string[]> {
    return this.writes.run(() => this.insertDevice(userId, device, by.clientId, now))
  }

  createLinkCode(
    codeHash: Uint8Array,
    userId: string,
    createdBy: string,
    expiresAt: number,
    now: number,
    max: number,
  ): Promise<number | undefined> {
    return this.writes.run(() => {
      const open = this.s.openLinkCodes.get(userId, now)!
      if (open.n >= max) return open.first!
      this.s.insertLinkCode.run(codeHash, userId, createdBy, expiresAt)
      return undefined
    })
  }

  redeemLinkCode(
    codeHash: Uint8Array,
    device: (userId: string) => NewDevice,
    now: number,
  ): Promise<{ userId: string; handle: string; device: NewDevice; notified: string[] }> {
    return this.writes.run(() => {
      const code = this.s.takeLinkCode.all(codeHash)[0]
      if (!code || code.expires_at <= now) throw new AppError("invalid_link_code", "link code unknown, used or expired")
      const made = device(code.user_id)
      const notified = this.insertDevice(code.user_id, made, this.s.device.get(code.created_by)!.client_id, now)
      return { userId: code.user_id, handle: this.s.accountById.get(code.user_id)!.handle, device: made, notified }
    })
  }

  removeDevice(by: DeviceRef, deviceId: string, now: number): Promise<DeviceRemoval> {
    const userId = by.userId
    return this.writes.run((): DeviceRemoval => {
      const d = this.s.device.get(deviceId)
      if (!d || d.user_id !== userId) throw new AppError("unknown_device", "no such device in your account")
      if (d.removed_at !== null) return { removedAt: d.removed_at, changed: false, notified: [] }
      if (this.s.activeCount.get(userId)!.n <= 1) {
        throw new AppError("conflict", "the account's last active device cannot be removed")
      }
      this.s.markRemoved.run(now, deviceId)
      this.s.deleteDeviceSessions.run(deviceId)
      this.s.deleteDeviceChallenges.run(deviceId)
      this.s.deleteDeviceLinkCodes.run(deviceId)
      // Every key goes, reserved ones too: a Commit that would spend one is refused (keypackage_not_found), since the
      // device could never process its Welcome anyway.
      for (const { ref } of this.s.deviceKeys.all(deviceId)) {
        this.s.deleteKey.run(ref)
        this.s.audit.run(now, "withdraw", deviceId, ref, deviceId, null)
      }
      const item = { kind: "deviceRemoved" as const, deviceId, clientId: d.client_id, byClientId: by.clientId }
      return { removedAt: now, changed: true, notified: this.tellDevices(userId, deviceId, item, now) }
    })
  }

  createChallenge(
    id: string,
    deviceId: string,
    nonce: Uint8Array,
    expiresAt: number,
    now: number,
    max: number,
  ): Promise<number | undefined> {
    return this.writes.run(() => {
      const open = this.s.outstandingChallenges.get(deviceId, now)!
      if (open.n >= max) return open.first!
      this.s.insertChallenge.run(id, deviceId, nonce, expiresAt)
      return undefined
    })
  }

  async sharesGroup(userA: string, userB: string): Promise<boolean> {
    return this.s.sharesGroup.get(userA, userB) !== undefined
  }

  consumeChallenge(id: string, now: number): Promise<{ deviceId: string; nonce: Uint8Array } | undefined> {
    return this.writes.run(() => {
      const row = this.s.takeChallenge.all(id)[0]
      if (!row || row.expires_at <= now) return undefined
      return { deviceId: row.device, nonce: new Uint8Array(row.nonce) }
    })
  }

  createSession(tokenHash: Uint8Array, deviceId: string, expiresAt: number): Promise<void> {
    return this.writes.run(() => void this.s.insertSession.run(tokenHash, deviceId, expiresAt))
  }

  async session(tokenHash: Uint8Array, now: number): Promise<{ device: DeviceRef; expiresAt: number } | undefined> {
    const row = this.s.session.get(tokenHash, now)
    if (!row) return undefined
    const device = { deviceId: row.id, userId: row.user_id, handle: row.handle, clientId: row.client_id }
    return { device, expiresAt: row.expires_at }
  }

  deleteSession(tokenHash: Uint8Array): Promise<void> {
    return this.writes.run(() => void this.s.deleteSession.run(tokenHash))
  }

  /** Whether `key` may sign the device's KeyPackages: it is the bound key, or none is bound yet. */
  private keyFits(owner: string, key: Uint8Array): boolean {
    const bound = this.s.mlsKey.get(owner)?.mls_key
    return !bound || sameBytes(bound, key)
  }

  /** Stores an accepted key inside its transaction; the first one binds its signature key to the device. */
  private insertKey(owner: string, kp: ValidKeyPackage, lastResort: boolean, now: number, seq: number): void {
    this.s.bindMlsKey.run(kp.signatureKey, owner)
    this.s.insertInitKey.run(kp.initKey, kp.ref)
    this.s.insertKey.run(kp.ref, owner, kp.cipherSuite, kp.data, kp.notAfter, lastResort ? 1 : 0, now, seq)
  }

  addKeyPackages(owner: string, items: ValidKeyPackage[], cap: number, now: number): Promise<StoreUploadOutcome[]> {
    return this.writes.run(() => {
      let held = this.s.heldCount.get(owner, now)!.n
      let seq = this.s.nextSeq.get()!.seq
      return items.map((kp): StoreUploadOutcome => {
        const existing = this.s.keyByRef.get(kp.ref)
        if (existing) return { status: "duplicate", ref: kp.ref, notAfter: existing.not_after }
        if (this.s.initKeyRef.get(kp.initKey)) return { status: "rejected", reason: "init_key_reused" }
        if (!this.keyFits(owner, kp.signatureKey)) return { status: "rejected", reason: "credential_mismatch" }
        if (held >= cap) return { status: "rejected", reason: "cap_exceeded" }
        this.insertKey(owner, kp, false, now, seq++)
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
      if (!this.keyFits(owner, kp.signatureKey)) return { status: "rejected", reason: "credential_mismatch" }
      // The old last-resort key is retired, not deleted: a reservation of it may still be spent.
      this.s.retireLastResort.run(owner, kp.cipherSuite)
      this.insertKey(owner, kp, true, now, this.s.nextSeq.get()!.seq)
      return { status: "accepted", ref: kp.ref, notAfter: kp.notAfter }
    })
  }

  reserve(
    owners: readonly string[],
    cipherSuite: number,
    requester: DeviceRef,
    newId: () => string,
    now: number,
    expiresAt: number,
    lowWatermark: number,
  ): Promise<{ reserved: StoredReservation[]; missing: string[] }> {
    return this.writes.run(() => {
      const reserved: StoredReservation[] = []
      const missing: string[] = []
      for (const owner of owners) {
        const r = this.reserveOne(owner, cipherSuite, requester, newId(), now, expiresAt, lowWatermark)
        if (r) reserved.push(r)
        else missing.push(owner)
      }
      // Thrown inside the transaction: the lapses released on the way roll back with it, and nothing changes.
      if (reserved.length === 0) throw new AppError("no_keypackage_available", "no KeyPackage available")
      return { reserved, missing }
    })
  }

  /** One device's reservation inside the transaction of `reserve`; undefined when it has no key. */
  private reserveOne(
    owner: string,
    cipherSuite: number,
    requester: DeviceRef,
    reservationId: string,
    now: number,
    expiresAt: number,
    lowWatermark: number,
  ): StoredReservation | undefined {
    this.lapses.release(now, owner)
    let lastResort = false
    let key = this.s.takeOldest.all(reservationId, requester.deviceId, expiresAt, owner, cipherSuite, now)[0]
    if (!key) {
      key = this.s.lastResort.get(owner, cipherSuite, now)
      lastResort = true
    }
    if (!key) return undefined
    this.s.insertReservation.run(reservationId, key.ref, owner, requester.deviceId, now, expiresAt)
    this.s.audit.run(now, "reserve", owner, key.ref, requester.deviceId, reservationId)
    const remainingAvailable = this.s.availableCount.get(owner, cipherSuite, now)!.n
    // The owner's notifications are stored with the reservation itself (its stream pushes them).
    const by = { by: requester.handle, byClientId: requester.clientId }
    this.inbox.add(owner, { kind: "keyReserved", ref: key.ref, ...by, lastResort, remainingAvailable }, now)
    if (remainingAvailable < lowWatermark)
      this.inbox.add(owner, { kind: "poolLow", available: remainingAvailable }, now)
    const data = new Uint8Array(key.data)
    return { owner, ref: key.ref, data, reservationId, expiresAt, lastResort, remainingAvailable }
  }

  spend(ref: string, reservationId: string, requester: DeviceRef, now: number): Promise<StoredSpend> {
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
      this.s.deleteOldLinkCodes.run(now)
      this.s.deleteOldSessions.run(now)
      return { expiredKeys: expired.length, lapsedReservations: lapsed, spentKeys: spent.length }
    })
  }

  takeTokens(buckets: readonly BucketRequest[], n: number, now: number): Promise<number[]> {
    return this.buckets.takeTokens(buckets, n, now)
  }

  pruneBuckets(now: number): Promise<void> {
    return this.buckets.pruneBuckets(now)
  }

  close(): void {
    this.db.close()
  }
}
