/**
 * Server databases as older builds wrote them, for upgrade tests: the shipped migrations up to a version, then rows
 * written with the statements the server of that version used (users named by user name, before accounts and
 * devices). The current server opens such a file and migrates it in place.
 */
import Database from "better-sqlite3"
import { migrations } from "../../server/store/migrations.js"
import { migrate } from "../../shared/migrate.js"

export interface OldUser {
  name: string
  /** The user's one Ed25519 key (login and MLS, before devices). */
  key: Uint8Array
  createdAt: number
}

export interface OldGroup {
  id: string
  epoch: number
  lastSeq: number
  createdBy: string
  createdAt: number
  members: { name: string; joinedSeq: number; removedSeq?: number }[]
  /** Log entries still held (retention may have deleted those before). */
  entries: { seq: number; epoch: number; kind: string; sender: string; data: Uint8Array; receivedAt: number }[]
}

export interface OldKeyPackage {
  ref: string
  owner: string
  initKey: Uint8Array
  data: Uint8Array
  notAfter: number
  uploadedAt: number
  seq: number
  lastResort?: boolean
  /** A reservation of the key held by another user. */
  reservation?: { id: string; by: string; createdAt: number; expiresAt: number }
}

export interface OldServerContent {
  users: OldUser[]
  groups?: OldGroup[]
  keyPackages?: OldKeyPackage[]
  /** Inbox items (the wire InboxItem as JSON, as stored). */
  inbox?: { name: string; kind: string; groupId: string | null; item: string; createdAt: number }[]
  sessions?: { tokenHash: Uint8Array; name: string; expiresAt: number }[]
}

/** Writes a server database at schema `version` (1..5, before accounts and devices) holding `content`. */
export function writeOldServerDb(path: string, version: number, content: OldServerContent): void {
  if (version > 5) throw new Error("schema 6 has accounts and devices: not an old database")
  const db = new Database(path)
  db.pragma("journal_mode = WAL")
  db.pragma("foreign_keys = ON")
  migrate(db, migrations.slice(0, version), "mls-server")
  db.transaction(() => {
    const user = db.prepare("INSERT INTO users (username, signature_key, created_at) VALUES (?, ?, ?)")
    for (const u of content.users) user.run(u.name, u.key, u.createdAt)
    const group = db.prepare("INSERT INTO groups (id, epoch, last_seq, created_by, created_at) VALUES (?, ?, ?, ?, ?)")
    const member = db.prepare(
      "INSERT INTO group_members (group_id, username, joined_seq, removed_seq) VALUES (?, ?, ?, ?)",
    )
    const entry = db.prepare(
      `INSERT INTO group_log (group_id, seq, epoch, kind, sender, data, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
    )
    for (const g of content.groups ?? []) {
      group.run(g.id, g.epoch, g.lastSeq, g.createdBy, g.createdAt)
      for (const m of g.members) member.run(g.id, m.name, m.joinedSeq, m.removedSeq ?? null)
      for (const e of g.entries) entry.run(g.id, e.seq, e.epoch, e.kind, e.sender, e.data, e.receivedAt)
    }
    const key = db.prepare(
      `INSERT INTO keypackages (ref, owner, cipher_suite, data, not_after, last_resort, state, uploaded_at, seq)
       VALUES (?, ?, 1, ?, ?, ?, 'available', ?, ?)`,
    )
    const initKey = db.prepare("INSERT INTO init_keys (init_key, ref) VALUES (?, ?)")
    const reserveKey = db.prepare(
      "UPDATE keypackages SET state = 'reserved', reservation_id = ?, reserved_by = ?, reserved_until = ? WHERE ref = ?",
    )
    const reservation = db.prepare(
      "INSERT INTO reservations (id, ref, owner, requester, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
    )
    for (const k of content.keyPackages ?? []) {
      initKey.run(k.initKey, k.ref)
      key.run(k.ref, k.owner, k.data, k.notAfter, k.lastResort ? 1 : 0, k.uploadedAt, k.seq)
      const r = k.reservation
      if (!r) continue
      reserveKey.run(r.id, r.by, r.expiresAt, k.ref)
      reservation.run(r.id, k.ref, k.owner, r.by, r.createdAt, r.expiresAt)
    }
    const inbox = db.prepare("INSERT INTO inbox (username, kind, group_id, item, created_at) VALUES (?, ?, ?, ?, ?)")
    for (const i of content.inbox ?? []) inbox.run(i.name, i.kind, i.groupId, i.item, i.createdAt)
    const session = db.prepare("INSERT INTO sessions (token_hash, username, expires_at) VALUES (?, ?, ?)")
    for (const s of content.sessions ?? []) session.run(s.tokenHash, s.name, s.expiresAt)
  })()
  db.close()
}
