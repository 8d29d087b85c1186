/**
 * ServerStore on PostgreSQL: the same semantics as ../sqliteStore.ts, each write one transaction (database.ts).
 * Where SQLite relies on its single writer, this store takes row locks: the device row for what is counted or bound
 * per device (KeyPackage uploads, challenges), the account row for what is counted per account (link codes, the last
 * active device), the key row (`FOR UPDATE SKIP LOCKED`) when reserving, so that concurrent reservers on any number
 * of instances never take the same key. A unique-key race (two registrations of one handle) runs the transaction
 * again, which then sees the winner.
 */
import { toBase64Url } from "../../../rpc-schema/common.js"
import { AppError } from "../../../rpc-schema/errors.js"
import type { InboxItem } from "../../../rpc-schema/server/http/inbox.js"
import { sameBytes } from "../../../shared/bytes.js"
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
} from "../types.js"
import { deviceColumns, deviceFrom, toDevice, type DeviceRow } from "../sqliteStore.js"
import { bytes, PgDatabase, sqlState, type Queries, type Tx } from "./database.js"
import type { Ring } from "./doorbell.js"
import { SessionCache } from "./sessionCache.js"
import { audit, releaseLapses, spendKeys, spendOutcome, type SpendCall, type SpendRow } from "./keys.js"
import { CallBatcher } from "./callBatcher.js"
import type { BucketRequest } from "../../services/rateLimiter.js"

interface AccountRow {
  user_id: string
  handle: string
  created_at: number
}

/** A row of migrations.ts's `reserve_keys`. */
interface ReservedRow {
  owner: string
  ref: string
  data: Buffer
  reservation_id: string
  last_resort: boolean
  remaining: number
}

/** One request's reservation: one key of each owner, reservation `ids[i]` for `owners[i]`. */
interface ReserveCall {
  owners: readonly string[]
  ids: string[]
  cipherSuite: number
  requester: DeviceRef
  now: number
  expiresAt: number
  lowWatermark: number
}

/** The SQLSTATE `reserve_keys` raises when an owner has lapsed reservations to release first. */
const lapsesFirst = "MLSLP"

/** Reserves the keys of `calls` in one statement (`reserve_keys`); answers each call's rows, in order. */
async function reserveKeys(q: Pick<Queries, "rows">, calls: readonly ReserveCall[]): Promise<ReservedRow[][]> {
  const each = <T>(f: (c: ReserveCall) => T) => calls.flatMap((c) => c.owners.map(() => f(c)))
  const rows = await q.rows<ReservedRow>("SELECT * FROM reserve_keys($1, $2, $3, $4, $5, $6, $7, $8, $9)", [
    calls.flatMap((c) => c.owners),
    each((c) => c.cipherSuite),
    each((c) => c.requester.deviceId),
    each((c) => c.requester.handle),
    each((c) => c.requester.clientId),
    calls.flatMap((c) => c.ids),
    each((c) => c.now),
    each((c) => c.expiresAt),
    each((c) => c.lowWatermark),
  ])
  const byId = new Map(rows.map((r) => [r.reservation_id, r]))
  return calls.map((c) => c.ids.flatMap((id) => byId.get(id) ?? []))
}

/** The ring that wakes the streams of the owners of `rows`, if any. */
const inboxRing = (rows: readonly { owner: string }[]): Ring[] =>
  rows.length > 0 ? [{ k: "inbox", devices: [...new Set(rows.map((r) => r.owner))] }] : []

const noKeyAvailable = () => new AppError("no_keypackage_available", "no KeyPackage available")

export class PgStore implements ServerStore {
  private readonly sessions = new SessionCache()

  private constructor(readonly db: PgDatabase) {}

  static async open(url: string, connections: number): Promise<PgStore> {
    return new PgStore(await PgDatabase.open(url, connections))
  }

  takeTokens(buckets: readonly BucketRequest[], n: number, now: number): Promise<number[]> {
    return this.db.buckets.takeTokens(buckets, n, now)
  }

  pruneBuckets(now: number): Promise<void> {
    return this.db.buckets.pruneBuckets(now)
  }

  createAccount(userId: string, handle: string, device: NewDevice, now: number): Promise<void> {
    return this.db.transaction(async (tx) => {
      if (await tx.row("SELECT 1 FROM accounts WHERE handle = $1", [handle])) {
        throw new AppError("username_taken", `user name "${handle}" is taken`)
      }
      await tx.run("INSERT INTO accounts (user_id, handle, created_at) VALUES ($1, $2, $3)", [userId, handle, now])
      await this.insertDeviceRow(tx, userId, device, now)
    })
  }

  private async insertDeviceRow(tx: Tx, userId: string, device: NewDevice, now: number): Promise<void> {
    await tx.run("INSERT INTO devices (id, user_id, client_id, login_key, created_at) VALUES ($1, $2, $3, $4, $5)", [
      device.deviceId,
      userId,
      device.clientId,
      bytes(device.loginKey),
      now,
    ])
    await tx.run("INSERT INTO inbox_heads (device) VALUES ($1)", [device.deviceId])
  }

  private accountRow(q: Pick<Tx, "row">, ref: string): Promise<AccountRow | undefined> {
    return q.row<AccountRow>(
      "SELECT user_id, handle, created_at FROM accounts WHERE handle = $1 OR user_id = $1 ORDER BY handle = $1 DESC LIMIT 1",
      [ref],
    )
  }

  private devicesOf(q: Pick<Tx, "rows">, userId: string): Promise<DeviceRow[]> {
    return q.rows<DeviceRow>(`SELECT ${deviceColumns} ${deviceFrom} WHERE d.user_id = $1 ORDER BY d.n`, [userId])
  }

  /** The account and its devices: every reservation and key lookup starts here. */
  account(ref: string): Promise<StoredAccount | undefined> {
    return this.accounts.run(ref)
  }

  /** The accounts (with their devices) that the lookups of one turn of the event loop name, in one statement. */
  private readonly accounts = new CallBatcher<string, StoredAccount | undefined>(async (refs) => {
    const rows = await this.db.rows<DeviceRow & { n: number; account_id: string; account_created: number }>(
      `SELECT q.n, a.user_id AS account_id, a.created_at AS account_created, ${deviceColumns}
       FROM unnest($1::TEXT[]) WITH ORDINALITY AS q(ref, n)
       JOIN LATERAL (SELECT user_id, handle, created_at FROM accounts
                     WHERE handle = q.ref OR user_id = q.ref ORDER BY handle = q.ref DESC LIMIT 1) a ON true
       LEFT JOIN devices d ON d.user_id = a.user_id ORDER BY q.n, d.n`,
      [refs],
    )
    const byRef = refs.map(() => [] as typeof rows)
    for (const r of rows) byRef[r.n - 1]!.push(r)
    return byRef.map((mine) => {
      const a = mine[0]
      if (!a) return undefined
      const devices = mine.filter((r) => r.id !== null).map(toDevice)
      return { userId: a.account_id, handle: a.handle, createdAt: a.account_created, devices }
    })
  })

  async device(deviceId: string): Promise<StoredDevice | undefined> {
    const row = await this.db.row<DeviceRow>(`SELECT ${deviceColumns} ${deviceFrom} WHERE d.id = $1`, [deviceId])
    return row && toDevice(row)
  }

  /** Puts `item` in the inbox of every active device of `userId` but `except`; answers their ids. */
  private async tellDevices(tx: Tx, userId: string, except: string, item: InboxItem, now: number) {
    const others = (await this.devicesOf(tx, userId)).filter((d) => d.removed_at === null && d.id !== except)
    for (const d of others) tx.addInbox(d.id, item, now)
    return others.map((d) => d.id)
  }

  /** Adds a device and tells the account's other devices; the account row is locked by the caller. */
  private async insertDevice(tx: Tx, userId: string, device: NewDevice, byClientId: string, now: number) {
    const taken = await tx.row("SELECT 1 FROM devices WHERE login_key = $1 AND removed_at IS NULL LIMIT 1", [
      bytes(device.loginKey),
    ])
    if (taken) throw new AppError("conflict", "that login key is in use by a device already; every device has its own")
    await this.insertDeviceRow(tx, userId, device, now)
    const item = { kind: "deviceAdded" as const, deviceId: device.deviceId, clientId: device.clientId, byClientId }
    return this.tellDevices(tx, userId, device.deviceId, item, now)
  }

  /** Locks the account's row: its devices and link codes change one transaction at a time. */
  private async lockAccount(tx: Tx, userId: string): Promise<void> {
    await tx.run("SELECT 1 FROM accounts WHERE user_id = $1 FOR UPDATE", [userId])
  }

  addDevice(userId: string, device: NewDevice, by: DeviceRef, now: number): Promise<string[]> {
    return this.db.transaction(async (tx) => {
      await this.lockAccount(tx, userId)
      return this.insertDevice(tx, userId, device, by.clientId, now)
    })
  }

  createLinkCode(
    codeHash: Uint8Array,
    userId: string,
    createdBy: string,
    expiresAt: number,
    now: number,
    max: number,
  ): Promise<number | undefined> {
    return this.db.transaction(async (tx) => {
      await this.lockAccount(tx, userId)
      const open = (await tx.row<{ n: number; first: number | null }>(
        "SELECT count(*) AS n, min(expires_at) AS first FROM link_codes WHERE user_id = $1 AND expires_at > $2",
        [userId, now],
      ))!
      if (open.n >= max) return open.first!
      await tx.run("INSERT INTO link_codes (code_hash, user_id, created_by, expires_at) VALUES ($1, $2, $3, $4)", [
        bytes(codeHash),
        userId,
        createdBy,
        expiresAt,
      ])
      return undefined
    })
  }

  redeemLinkCode(
    codeHash: Uint8Array,
    device: (userId: string) => NewDevice,
    now: number,
  ): Promise<{ userId: string; handle: string; device: NewDevice; notified: string[] }> {
    return this.db.transaction(async (tx) => {
      const code = await tx.row<{ user_id: string; created_by: string; expires_at: number }>(
        "DELETE FROM link_codes WHERE code_hash = $1 RETURNING user_id, created_by, expires_at",
        [bytes(codeHash)],
      )
      if (!code || code.expires_at <= now) throw new AppError("invalid_link_code", "link code unknown, used or expired")
      await this.lockAccount(tx, code.user_id)
      const made = device(code.user_id)
      const by = (await tx.row<{ client_id: string }>("SELECT client_id FROM devices WHERE id = $1", [
        code.created_by,
      ]))!
      const notified = await this.insertDevice(tx, code.user_id, made, by.client_id, now)
      const handle = (await this.accountRow(tx, code.user_id))!.handle
      return { userId: code.user_id, handle, device: made, notified }
    })
  }

  async removeDevice(by: DeviceRef, deviceId: string, now: number): Promise<DeviceRemoval> {
    const userId = by.userId
    const removal = await this.db.transaction(async (tx): Promise<DeviceRemoval> => {
      await this.lockAccount(tx, userId)
      const d = await tx.row<DeviceRow>(`SELECT ${deviceColumns} ${deviceFrom} WHERE d.id = $1`, [deviceId])
      if (!d || d.user_id !== userId) throw new AppError("unknown_device", "no such device in your account")
      if (d.removed_at !== null) return { removedAt: d.removed_at, changed: false, notified: [] }
      const active = (await tx.row<{ n: number }>(
        "SELECT count(*) AS n FROM devices WHERE user_id = $1 AND removed_at IS NULL",
        [userId],
      ))!
      if (active.n <= 1) throw new AppError("conflict", "the account's last active device cannot be removed")
      await tx.run("UPDATE devices SET removed_at = $1 WHERE id = $2", [now, deviceId])
      await tx.run("DELETE FROM sessions WHERE device = $1", [deviceId])
      await tx.run("DELETE FROM challenges WHERE device = $1", [deviceId])
      await tx.run("DELETE FROM link_codes WHERE created_by = $1", [deviceId])
      // Every key goes, reserved ones too (see ../sqliteStore.ts).
      const keys = await tx.rows<{ ref: string }>("DELETE FROM keypackages WHERE owner = $1 RETURNING ref", [deviceId])
      for (const { ref } of keys) await audit(tx, now, "withdraw", deviceId, ref, deviceId, null)
      const item = { kind: "deviceRemoved" as const, deviceId, clientId: d.client_id, byClientId: by.clientId }
      tx.ring({ k: "device", device: deviceId })
      return { removedAt: now, changed: true, notified: await this.tellDevices(tx, userId, deviceId, item, now) }
    })
    this.sessions.forgetDevice(deviceId)
    return removal
  }

  sharesGroup(userA: string, userB: string): Promise<boolean> {
    return this.groupMates.run([userA, userB])
  }

  /** The group-mate checks of one turn of the event loop, in one statement. */
  private readonly groupMates = new CallBatcher<[string, string], boolean>(async (pairs) => {
    const rows = await this.db.rows<{ n: number }>(
      `SELECT q.n FROM unnest($1::TEXT[], $2::TEXT[]) WITH ORDINALITY AS q(a, b, n)
       WHERE EXISTS (SELECT 1 FROM devices da JOIN group_members a ON a.device = da.id
                     JOIN group_members b ON b.group_id = a.group_id JOIN devices db ON db.id = b.device
                     WHERE da.user_id = q.a AND a.removed_seq IS NULL AND db.user_id = q.b AND b.removed_seq IS NULL)`,
      [pairs.map((p) => p[0]), pairs.map((p) => p[1])],
    )
    const mates = new Set(rows.map((r) => r.n))
    return pairs.map((_, i) => mates.has(i + 1))
  })

  createChallenge(
    id: string,
    deviceId: string,
    nonce: Uint8Array,
    expiresAt: number,
    now: number,
    max: number,
  ): Promise<number | undefined> {
    return this.db.transaction(async (tx) => {
      await tx.run("SELECT 1 FROM devices WHERE id = $1 FOR UPDATE", [deviceId])
      const open = (await tx.row<{ n: number; first: number | null }>(
        "SELECT count(*) AS n, min(expires_at) AS first FROM challenges WHERE device = $1 AND expires_at > $2",
        [deviceId, now],
      ))!
      if (open.n >= max) return open.first!
      await tx.run("INSERT INTO challenges (id, device, nonce, expires_at) VALUES ($1, $2, $3, $4)", [
        id,
        deviceId,
        bytes(nonce),
        expiresAt,
      ])
      return undefined
    })
  }

  async consumeChallenge(id: string, now: number): Promise<{ deviceId: string; nonce: Uint8Array } | undefined> {
    // One statement: the challenge answers once, whichever instance asks first.
    const row = await this.db.row<{ device: string; nonce: Buffer; expires_at: number }>(
      "DELETE FROM challenges WHERE id = $1 RETURNING device, nonce, expires_at",
      [id],
    )
    if (!row || row.expires_at <= now) return undefined
    return { deviceId: row.device, nonce: new Uint8Array(row.nonce) }
  }

  async createSession(tokenHash: Uint8Array, deviceId: string, expiresAt: number): Promise<void> {
    await this.db.run("INSERT INTO sessions (token_hash, device, expires_at) VALUES ($1, $2, $3)", [
      bytes(tokenHash),
      deviceId,
      expiresAt,
    ])
  }

  session(tokenHash: Uint8Array, now: number): Promise<{ device: DeviceRef; expiresAt: number } | undefined> {
    return this.sessions.get(toBase64Url(tokenHash), now, async () => {
      const row = await this.db.row<DeviceRow & { expires_at: number }>(
        `SELECT ${deviceColumns}, s.expires_at ${deviceFrom}
         JOIN sessions s ON s.device = d.id WHERE s.token_hash = $1 AND s.expires_at > $2`,
        [bytes(tokenHash), now],
      )
      if (!row) return undefined
      const device = { deviceId: row.id, userId: row.user_id, handle: row.handle, clientId: row.client_id }
      return { device, expiresAt: row.expires_at }
    })
  }

  async deleteSession(tokenHash: Uint8Array): Promise<void> {
    const id = toBase64Url(tokenHash)
    await this.db.transaction(async (tx) => {
      const row = await tx.row<{ device: string }>("DELETE FROM sessions WHERE token_hash = $1 RETURNING device", [
        bytes(tokenHash),
      ])
      // The streams opened with it, and the cached copies, on every instance, go.
      if (row) tx.ring({ k: "session", device: row.device, session: id })
    })
    this.sessions.forgetSession(id)
  }

  /** What another instance's ring says for this store: its cached sessions revoked or of a removed device go. */
  heard(r: Ring): void {
    if (r.k === "session") this.sessions.forgetSession(r.session)
    else if (r.k === "device") this.sessions.forgetDevice(r.device)
  }

  /** Rings may have been missed (the listener reconnected): no cached session is trusted. */
  missedRings(): void {
    this.sessions.forgetAll()
  }

  /**
   * The device's bound MLS key, with its row locked: uploads of one device are one at a time, so the cap and the
   * binding hold under concurrent uploads.
   */
  private async lockedMlsKey(tx: Tx, owner: string): Promise<Buffer | null> {
    const row = await tx.row<{ mls_key: Buffer | null }>("SELECT mls_key FROM devices WHERE id = $1 FOR UPDATE", [
      owner,
    ])
    return row?.mls_key ?? null
  }

  /** Stores accepted keys in upload order; the first binds its signature key to the device when none is. */
  private async insertKeys(tx: Tx, owner: string, kps: ValidKeyPackage[], lastResort: boolean, now: number) {
    if (kps.length === 0) return
    await tx.run("UPDATE devices SET mls_key = $1 WHERE id = $2 AND mls_key IS NULL", [
      bytes(kps[0]!.signatureKey),
      owner,
    ])
    const col = <T>(f: (kp: ValidKeyPackage) => T) => kps.map(f)
    await tx.run("INSERT INTO init_keys (init_key, ref) SELECT * FROM unnest($1::bytea[], $2::text[])", [
      col((kp) => bytes(kp.initKey)),
      col((kp) => kp.ref),
    ])
    await tx.run(
      `INSERT INTO keypackages (ref, owner, cipher_suite, data, not_after, last_resort, state, uploaded_at)
       SELECT ref, $2, suite, data, not_after, $3, 'available', $4
       FROM unnest($1::text[], $5::int[], $6::bytea[], $7::bigint[]) AS k(ref, suite, data, not_after)`,
      [
        col((kp) => kp.ref),
        owner,
        lastResort,
        now,
        col((kp) => kp.cipherSuite),
        col((kp) => bytes(kp.data)),
        col((kp) => kp.notAfter),
      ],
    )
  }

  /**
   * Sorts an upload into outcomes, as SQLite's item by item would: a ref stored (or earlier in the upload) is a
   * duplicate, an init key ever accepted is refused, and so is a signature key other than the bound one.
   */
  private async sortUpload(tx: Tx, owner: string, kps: ValidKeyPackage[]) {
    const stored = new Map(
      (
        await tx.rows<{ ref: string; not_after: number }>(
          "SELECT ref, not_after FROM keypackages WHERE ref = ANY($1)",
          [kps.map((kp) => kp.ref)],
        )
      ).map((r) => [r.ref, r.not_after]),
    )
    const usedInitKeys = new Set(
      (
        await tx.rows<{ init_key: Buffer }>("SELECT init_key FROM init_keys WHERE init_key = ANY($1)", [
          kps.map((kp) => bytes(kp.initKey)),
        ])
      ).map((r) => r.init_key.toString("hex")),
    )
    let bound = await this.lockedMlsKey(tx, owner)
    return {
      /** The outcome of an upload that is not new, else undefined. */
      check(kp: ValidKeyPackage): StoreUploadOutcome | undefined {
        const existing = stored.get(kp.ref)
        if (existing !== undefined) return { status: "duplicate", ref: kp.ref, notAfter: existing }
        if (usedInitKeys.has(Buffer.from(kp.initKey).toString("hex"))) {
          return { status: "rejected", reason: "init_key_reused" }
        }
        if (bound && !sameBytes(bound, kp.signatureKey)) return { status: "rejected", reason: "credential_mismatch" }
        return undefined
      },
      /** Counts `kp` as stored for the checks of the items after it. */
      accept(kp: ValidKeyPackage): void {
        bound ??= bytes(kp.signatureKey)
        stored.set(kp.ref, kp.notAfter)
        usedInitKeys.add(Buffer.from(kp.initKey).toString("hex"))
      },
    }
  }

  addKeyPackages(owner: string, items: ValidKeyPackage[], cap: number, now: number): Promise<StoreUploadOutcome[]> {
    return this.db.transaction(async (tx) => {
      const upload = await this.sortUpload(tx, owner, items)
      let held = (await tx.row<{ n: number }>(
        `SELECT count(*) AS n FROM keypackages
         WHERE owner = $1 AND NOT last_resort AND state IN ('available', 'reserved') AND not_after > $2`,
        [owner, now],
      ))!.n
      const accepted: ValidKeyPackage[] = []
      const outcomes = items.map((kp): StoreUploadOutcome => {
        const refused = upload.check(kp)
        if (refused) return refused
        if (held >= cap) return { status: "rejected", reason: "cap_exceeded" }
        upload.accept(kp)
        accepted.push(kp)
        held++
        return { status: "accepted", ref: kp.ref, notAfter: kp.notAfter }
      })
      await this.insertKeys(tx, owner, accepted, false, now)
      return outcomes
    })
  }

  setLastResort(owner: string, kp: ValidKeyPackage, now: number): Promise<StoreUploadOutcome> {
    return this.db.transaction(async (tx): Promise<StoreUploadOutcome> => {
      const refused = (await this.sortUpload(tx, owner, [kp])).check(kp)
      if (refused) return refused
      // The old last-resort key is retired, not deleted: a reservation of it may still be spent.
      await tx.run(
        `UPDATE keypackages SET state = 'retired'
         WHERE owner = $1 AND cipher_suite = $2 AND last_resort AND state = 'available'`,
        [owner, kp.cipherSuite],
      )
      await this.insertKeys(tx, owner, [kp], true, now)
      return { status: "accepted", ref: kp.ref, notAfter: kp.notAfter }
    })
  }

  /**
   * One statement in the common case (migrations.ts's `reserve_keys`), shared with the other reserves of this turn of
   * the event loop. When an owner has reservations that lapsed, `reserve_keys` refuses, and one transaction releases
   * them (the keys back, the owners' keyReleased items first) and then reserves.
   */
  async reserve(
    owners: readonly string[],
    cipherSuite: number,
    requester: DeviceRef,
    newId: () => string,
    now: number,
    expiresAt: number,
    lowWatermark: number,
  ): Promise<{ reserved: StoredReservation[]; missing: string[] }> {
    const call: ReserveCall = { owners, ids: owners.map(newId), cipherSuite, requester, now, expiresAt, lowWatermark }
    let rows: ReservedRow[]
    try {
      rows = await this.reserves.run(call)
    } catch (err) {
      if (sqlState(err) !== lapsesFirst) throw err
      rows = await this.db.transaction(async (tx) => {
        for (const owner of owners) await releaseLapses(tx, now, owner)
        await tx.writeInbox()
        const [rows] = await reserveKeys(tx, [call])
        // Thrown inside the transaction: the lapses released roll back with it, and nothing changes.
        if (rows!.length === 0) throw noKeyAvailable()
        for (const r of inboxRing(rows!)) tx.ring(r)
        return rows!
      })
    }
    if (rows.length === 0) throw noKeyAvailable()
    const reserved = rows.map((r) => ({
      owner: r.owner,
      ref: r.ref,
      data: new Uint8Array(r.data),
      reservationId: r.reservation_id,
      expiresAt,
      lastResort: r.last_resort,
      remainingAvailable: r.remaining,
    }))
    return { reserved, missing: owners.filter((o) => !rows.some((r) => r.owner === o)) }
  }

  private readonly reserves = new CallBatcher<ReserveCall, ReservedRow[]>((calls) =>
    this.db.change(
      (q) => reserveKeys(q, calls),
      (byCall) => inboxRing(byCall.flat()),
    ),
  )

  async spend(ref: string, reservationId: string, requester: DeviceRef, now: number): Promise<StoredSpend> {
    const row = await this.spends.run({ ref, reservationId, requester, now })
    return spendOutcome(row, ref, reservationId, requester, now)
  }

  private readonly spends = new CallBatcher<SpendCall, SpendRow>((calls) =>
    this.db.change(
      (q) => spendKeys(q, calls, true),
      (rows) => inboxRing(rows.filter((r) => r.spent) as { owner: string }[]),
    ),
  )

  withdraw(owner: string, ref: string, now: number): Promise<void> {
    return this.db.transaction(async (tx) => {
      const key = async () =>
        tx.row<{ owner: string; state: string }>("SELECT owner, state FROM keypackages WHERE ref = $1 FOR UPDATE", [
          ref,
        ])
      const k = await key()
      if (!k || k.owner !== owner) throw new AppError("keypackage_not_found", "no KeyPackage with that ref")
      if (k.state === "spent") throw new AppError("already_spent", "that KeyPackage was spent already")
      await releaseLapses(tx, now, owner)
      if ((await key())!.state === "reserved") {
        throw new AppError("keypackage_reserved", "that KeyPackage is reserved; it may be in use")
      }
      await tx.run("DELETE FROM keypackages WHERE ref = $1", [ref])
      await audit(tx, now, "withdraw", owner, ref, owner, null)
    })
  }

  private heldRefs(owner: string, now: number) {
    return this.db.rows<{ ref: string; reserved: boolean }>(
      `SELECT ref, (state = 'reserved' AND reserved_until > $2) AS reserved FROM keypackages
       WHERE owner = $1 AND NOT last_resort AND state IN ('available', 'reserved') AND not_after > $2
       ORDER BY ref COLLATE "C"`,
      [owner, now],
    )
  }

  async keyCounts(owner: string, now: number, soonMs: number): Promise<KeyCounts> {
    const c = (await this.db.row<{
      available: number
      reserved: number
      spent: number
      expired: number
      soon: number
      last: number | null
    }>(
      `SELECT
         count(*) FILTER (WHERE not_after > $2 AND (state = 'available' OR (state = 'reserved' AND reserved_until <= $2)))
           AS available,
         count(*) FILTER (WHERE state = 'reserved' AND reserved_until > $2 AND not_after > $2) AS reserved,
         count(*) FILTER (WHERE state = 'spent') AS spent,
         count(*) FILTER (WHERE state IN ('available', 'reserved') AND not_after <= $2) AS expired,
         count(*) FILTER (WHERE state = 'available' AND not_after > $2 AND not_after <= $3) AS soon,
         max(uploaded_at) AS last
       FROM keypackages WHERE owner = $1 AND NOT last_resort`,
      [owner, now, now + soonMs],
    ))!
    const lr = await this.db.row<{ ref: string; not_after: number }>(
      `SELECT ref, not_after FROM keypackages WHERE owner = $1 AND last_resort AND state = 'available'
       AND not_after > $2 ORDER BY seq DESC LIMIT 1`,
      [owner, now],
    )
    return {
      available: c.available,
      reserved: c.reserved,
      spent: c.spent,
      expired: c.expired,
      expiringSoon: c.soon,
      lastUpload: c.last,
      lastResort: lr ? { ref: lr.ref, notAfter: lr.not_after } : null,
      heldRefs: (await this.heldRefs(owner, now)).map((r) => r.ref),
    }
  }

  async keyRefs(owner: string, now: number): Promise<{ available: string[]; reserved: string[] }> {
    const rows = await this.heldRefs(owner, now)
    return {
      available: rows.filter((r) => !r.reserved).map((r) => r.ref),
      reserved: rows.filter((r) => r.reserved).map((r) => r.ref),
    }
  }

  collectGarbage(now: number, retentionMs: number): Promise<GcReport> {
    return this.db.transaction(async (tx): Promise<GcReport> => {
      const lapsed = await releaseLapses(tx, now)
      const expired = await tx.rows<{ ref: string; owner: string }>(
        `DELETE FROM keypackages WHERE not_after <= $1 AND NOT (state = 'reserved' AND reserved_until > $1)
         RETURNING ref, owner`,
        [now],
      )
      for (const e of expired) await audit(tx, now, "expire", e.owner, e.ref, null, null)
      const spent = await tx.run("DELETE FROM keypackages WHERE state = 'spent' AND spent_at <= $1", [
        now - retentionMs,
      ])
      await tx.run("DELETE FROM reservations WHERE expires_at <= $1", [now - retentionMs])
      await tx.run("DELETE FROM challenges WHERE expires_at <= $1", [now])
      await tx.run("DELETE FROM link_codes WHERE expires_at <= $1", [now])
      await tx.run("DELETE FROM sessions WHERE expires_at <= $1", [now])
      return { expiredKeys: expired.length, lapsedReservations: lapsed, spentKeys: spent }
    })
  }

  close(): Promise<void> {
    return this.db.close()
  }
}
