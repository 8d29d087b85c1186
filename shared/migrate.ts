/**
 * The one migration runner of the project's SQLite files (the server's and the daemon's). `PRAGMA user_version` is
 * the number of migrations applied; each pending one runs in its own IMMEDIATE transaction together with the bump,
 * so a crash leaves the file at a version boundary. A file whose version is above the build's migrations was written
 * by a newer build: it is refused before anything is changed, since this build would misread (or damage) a schema
 * it does not know.
 */
import type Database from "better-sqlite3"

export class SchemaTooNew extends Error {}

/** Applies the pending `migrations` to `db`; `program` names the build in the refusal ("mls-server", "mlsd"). */
export function migrate(db: Database.Database, migrations: readonly string[], program: string): void {
  const current = db.pragma("user_version", { simple: true }) as number
  if (current > migrations.length) {
    throw new SchemaTooNew(
      `database ${db.name} has schema version ${current}, newer than this ${program} knows (${migrations.length}): ` +
        `run a newer ${program}`,
    )
  }
  for (let v = current; v < migrations.length; v++) {
    db.transaction(() => {
      db.exec(migrations[v]!)
      db.pragma(`user_version = ${v + 1}`)
    }).immediate()
  }
}
