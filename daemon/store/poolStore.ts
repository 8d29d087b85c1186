/**
 * The KeyPackage pool in SQLite: metadata in `keypackages`, private parts in `keypackage_secrets`. A key is
 * inserted (with its secret) before it is ever sent to the server; secrets are deleted with secure_delete and a
 * WAL truncation so they are gone from the file.
 */
import type { KeyInfo, KeyState } from "../../rpc-schema/daemon/pool.js"
import { purgeWal, type Db } from "./database.js"

/** What the pool policy needs to know about a key. */
export interface LocalKey {
  ref: string
  state: KeyState
  lastResort: boolean
  notAfter: number
  createdAt: number
  uploadedAt: number | null
  hasSecret: boolean
  nextAttemptAt: number
  /** A pending invitation's Welcome was made for it: its private part must stay until accept or decline. */
  heldByInvitation?: boolean
}

export interface NewKey {
  ref: string
  cipherSuite: number
  lastResort: boolean
  publicData: Uint8Array
  initPrivate: Uint8Array
  hpkePrivate: Uint8Array
  notAfter: number
  createdAt: number
}

interface Row {
  ref: string
  cipher_suite: number
  last_resort: number
  state: KeyState
  created_at: number
  uploaded_at: number | null
  reserved_at: number | null
  reserved_by: string | null
  spent_at: number | null
  consumed_at: number | null
  not_after: number
  attempts: number
  next_attempt_at: number
  last_error: string | null
  has_secret: number
  held: number
}

const select = `SELECT k.*, s.ref IS NOT NULL AS has_secret,
  EXISTS (SELECT 1 FROM invitations i WHERE i.key_ref = k.ref) AS held
  FROM keypackages k LEFT JOIN keypackage_secrets s USING (ref)`

export type StatePatch = Partial<{
  state: KeyState
  uploadedAt: number
  reservedAt: number | null
  reservedBy: string | null
  spentAt: number
  consumedAt: number
  lastError: string | null
}>

const columns: Record<keyof StatePatch, string> = {
  state: "state",
  uploadedAt: "uploaded_at",
  reservedAt: "reserved_at",
  reservedBy: "reserved_by",
  spentAt: "spent_at",
  consumedAt: "consumed_at",
  lastError: "last_error",
}

export class PoolStore {
  constructor(private readonly db: Db) {}

  keys(): LocalKey[] {
    return this.db
      .prepare<[], Row>(`${select} ORDER BY seq`)
      .all()
      .map((r) => ({
        ref: r.ref,
        state: r.state,
        lastResort: r.last_resort === 1,
        notAfter: r.not_after,
        createdAt: r.created_at,
        uploadedAt: r.uploaded_at,
        hasSecret: r.has_secret === 1,
        nextAttemptAt: r.next_attempt_at,
        heldByInvitation: r.held === 1,
      }))
  }

  list(state: KeyState | undefined, limit: number): KeyInfo[] {
    const rows = state
      ? this.db.prepare<[string, number], Row>(`${select} WHERE state = ? ORDER BY seq LIMIT ?`).all(state, limit)
      : this.db.prepare<[number], Row>(`${select} ORDER BY seq LIMIT ?`).all(limit)
    return rows.map((r) => ({
      ref: r.ref,
      state: r.state,
      cipherSuite: r.cipher_suite,
      lastResort: r.last_resort === 1,
      createdAt: r.created_at,
      uploadedAt: r.uploaded_at,
      reservedAt: r.reserved_at,
      reservedBy: r.reserved_by,
      spentAt: r.spent_at,
      consumedAt: r.consumed_at,
      notAfter: r.not_after,
      hasPrivateKey: r.has_secret === 1,
      attempts: r.attempts,
      lastError: r.last_error,
    }))
  }

  lastUpload(): number | null {
    return (
      this.db
        .prepare<[], { at: number | null }>("SELECT max(uploaded_at) AS at FROM keypackages WHERE last_resort = 0")
        .get()?.at ?? null
    )
  }

  /** Persists freshly generated keys, secrets included, in one transaction (before any upload). */
  insert(keys: readonly NewKey[]): void {
    const seq = this.db.prepare<[], { s: number }>("SELECT coalesce(max(seq), 0) AS s FROM keypackages")
    const key = this.db.prepare(
      `INSERT INTO keypackages (ref, cipher_suite, last_resort, state, public_data, created_at, not_after, seq)
       VALUES (?, ?, ?, 'created', ?, ?, ?, ?)`,
    )
    const secret = this.db.prepare("INSERT INTO keypackage_secrets (ref, init_private, hpke_private) VALUES (?, ?, ?)")
    this.db.transaction(() => {
      let s = seq.get()!.s
      for (const k of keys) {
        key.run(k.ref, k.cipherSuite, k.lastResort ? 1 : 0, k.publicData, k.createdAt, k.notAfter, ++s)
        secret.run(k.ref, k.initPrivate, k.hpkePrivate)
      }
    })()
  }

  publicData(refs: readonly string[]): Map<string, Uint8Array> {
    const get = this.db.prepare<[string], { public_data: Buffer }>("SELECT public_data FROM keypackages WHERE ref = ?")
    const out = new Map<string, Uint8Array>()
    for (const ref of refs) {
      const r = get.get(ref)
      if (r) out.set(ref, new Uint8Array(r.public_data))
    }
    return out
  }

  /** Applies state patches in one transaction. */
  update(patches: ReadonlyArray<readonly [string, StatePatch]>): void {
    this.db.transaction(() => {
      for (const [ref, patch] of patches) {
        const keys = Object.keys(patch) as (keyof StatePatch)[]
        if (keys.length === 0) continue
        this.db
          .prepare(`UPDATE keypackages SET ${keys.map((k) => `${columns[k]} = @${k}`).join(", ")} WHERE ref = @ref`)
          .run({ ...patch, ref })
      }
    })()
  }

  /** Records a failed upload attempt: the key stays `created` and is retried after `nextAttemptAt`. */
  attemptFailed(refs: readonly string[], error: string, nextAttemptAt: number): void {
    const stmt = this.db.prepare(
      "UPDATE keypackages SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE ref = ?",
    )
    this.db.transaction(() => refs.forEach((ref) => stmt.run(nextAttemptAt, error, ref)))()
  }

  /** The server rejected these keys for good: `failed`, and their secrets deleted at once (never usable). */
  reject(rejections: ReadonlyArray<readonly [string, string]>): void {
    const mark = this.db.prepare("UPDATE keypackages SET state = 'failed', last_error = ? WHERE ref = ?")
    const drop = this.db.prepare("DELETE FROM keypackage_secrets WHERE ref = ?")
    this.db.transaction(() => {
      for (const [ref, error] of rejections) {
        mark.run(error, ref)
        drop.run(ref)
      }
    })()
    if (rejections.length > 0) purgeWal(this.db)
  }

  /** Deletes keys (rows and secrets) and makes sure the secrets are gone from the file. */
  purge(refs: readonly string[]): void {
    if (refs.length === 0) return
    const del = this.db.prepare("DELETE FROM keypackages WHERE ref = ?")
    this.db.transaction(() => refs.forEach((ref) => del.run(ref)))()
    purgeWal(this.db)
  }

  /** A key with its private parts, for joining from a Welcome made with it; undefined when unknown or purged. */
  privateKey(
    ref: string,
  ):
    | { state: KeyState; lastResort: boolean; publicData: Uint8Array; initPrivate: Uint8Array; hpkePrivate: Uint8Array }
    | undefined {
    const r = this.db
      .prepare<
        [string],
        { state: KeyState; last_resort: number; public_data: Buffer; init_private: Buffer; hpke_private: Buffer }
      >(
        `SELECT k.state, k.last_resort, k.public_data, s.init_private, s.hpke_private
         FROM keypackages k JOIN keypackage_secrets s USING (ref) WHERE k.ref = ?`,
      )
      .get(ref)
    return (
      r && {
        state: r.state,
        lastResort: r.last_resort === 1,
        publicData: new Uint8Array(r.public_data),
        initPrivate: new Uint8Array(r.init_private),
        hpkePrivate: new Uint8Array(r.hpke_private),
      }
    )
  }

  /** The state of a key, whether or not its private part is left. */
  stateOf(ref: string): KeyState | undefined {
    return this.db.prepare<[string], { state: KeyState }>("SELECT state FROM keypackages WHERE ref = ?").get(ref)?.state
  }

  /**
   * A Welcome used this key: `consumed`, and its private part deleted unless it is the last-resort key (which may
   * be used again). Runs inside the caller's transaction; the caller truncates the WAL afterwards.
   */
  consume(ref: string, at: number): void {
    const lastResort =
      this.db.prepare<[string], { last_resort: number }>("SELECT last_resort FROM keypackages WHERE ref = ?").get(ref)
        ?.last_resort === 1
    if (lastResort) return
    this.db.prepare("UPDATE keypackages SET state = 'consumed', consumed_at = ? WHERE ref = ?").run(at, ref)
    this.db.prepare("DELETE FROM keypackage_secrets WHERE ref = ?").run(ref)
  }
}
