import assert from "node:assert/strict"
import { spawnSync } from "node:child_process"
import { mkdirSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { describe, it, type TestContext } from "node:test"
import { fileURLToPath } from "node:url"
import Database from "better-sqlite3"
import { migrate, SchemaTooNew } from "../../shared/migrate.js"

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..")

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), "migrate-"))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A database as a future build might leave it: a table this build does not know, at schema version 99. */
function futureDatabase(path: string): void {
  const db = new Database(path)
  db.exec("CREATE TABLE from_the_future (x INTEGER); INSERT INTO from_the_future VALUES (42)")
  db.pragma("user_version = 99")
  db.close()
}

/** The database is exactly as futureDatabase left it. */
function untouched(path: string): void {
  const db = new Database(path, { readonly: true })
  assert.equal(db.pragma("user_version", { simple: true }), 99)
  const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all()
  assert.deepEqual(tables, ["from_the_future"])
  db.close()
}

function run(entry: string, args: string[]) {
  return spawnSync(process.execPath, ["--import", "tsx", join(root, entry), ...args], {
    cwd: root,
    encoding: "utf8",
    timeout: 30_000,
  })
}

describe("the shared migration runner", () => {
  it("applies each pending migration once, in order, and only those", (t) => {
    const db = new Database(join(tempDir(t), "m.db"))
    t.after(() => db.close())
    migrate(db, ["CREATE TABLE a (x INTEGER)"], "test")
    migrate(db, ["CREATE TABLE a (x INTEGER)", "CREATE TABLE b (x INTEGER)"], "test")
    assert.equal(db.pragma("user_version", { simple: true }), 2)
    assert.deepEqual(db.prepare("SELECT name FROM sqlite_master ORDER BY name").pluck().all(), ["a", "b"])
  })

  it("leaves the version where it was when a migration fails", (t) => {
    const db = new Database(join(tempDir(t), "m.db"))
    t.after(() => db.close())
    assert.throws(() => migrate(db, ["CREATE TABLE a (x INTEGER)", "CREATE TABLE a (x INTEGER)"], "test"))
    assert.equal(db.pragma("user_version", { simple: true }), 1)
  })

  it("refuses a database from a newer build and changes nothing", (t) => {
    const path = join(tempDir(t), "m.db")
    futureDatabase(path)
    const db = new Database(path)
    assert.throws(() => migrate(db, ["CREATE TABLE a (x INTEGER)"], "test"), SchemaTooNew)
    db.close()
    untouched(path)
  })

  it("makes the daemon refuse to start on a database from a newer mlsd, with a clear message", (t) => {
    const dataDir = join(tempDir(t), "data")
    mkdirSync(dataDir, { mode: 0o700 })
    futureDatabase(join(dataDir, "mlsd.db"))
    const r = run("daemon/main.ts", ["--profile", "p", "--data-dir", dataDir, "--socket", join(dataDir, "s.sock")])
    assert.equal(r.status, 1, r.stderr)
    assert.match(r.stderr, /^mlsd: profile p: database .*mlsd\.db has schema version 99, newer than this mlsd knows/m)
    untouched(join(dataDir, "mlsd.db"))
  })

  it("makes the server refuse to start on a database from a newer server, with a clear message", (t) => {
    const path = join(tempDir(t), "server.db")
    futureDatabase(path)
    const r = run("server/main.ts", ["--port", "0", "--db", path])
    assert.equal(r.status, 1, r.stderr)
    assert.match(
      r.stderr,
      /^mls-server: database .*server\.db has schema version 99, newer than this mls-server knows/m,
    )
    untouched(path)
  })
})
