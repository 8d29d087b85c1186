/**
 * Opens the daemon's SQLite file: WAL, full sync, secure_delete, foreign keys, migrations by the shared runner (a
 * database from a newer mlsd is refused).
 */
import { closeSync, openSync } from "node:fs"
import Database from "better-sqlite3"
import { migrate } from "../../shared/migrate.js"
import { migrations } from "./migrations.js"

export type Db = Database.Database

export function openDatabase(path: string): Db {
  // Created 0600 before SQLite opens it: the file holds private keys.
  closeSync(openSync(path, "a", 0o600))
  const db = new Database(path)
  db.pragma("journal_mode = WAL")
  db.pragma("synchronous = FULL")
  // Deleted rows are overwritten with zeros, so removed private keys do not linger in free pages.
  db.pragma("secure_delete = ON")
  db.pragma("foreign_keys = ON")
  db.pragma("busy_timeout = 5000")
  migrate(db, migrations, "mlsd")
  return db
}

/**
 * Truncates the WAL after private material was deleted: until then older frames in the WAL still hold the
 * deleted pages. TRUNCATE copies every frame back into the (zeroed) main file and empties the WAL file.
 */
export function purgeWal(db: Db): void {
  db.pragma("wal_checkpoint(TRUNCATE)")
}
