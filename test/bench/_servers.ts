/**
 * The servers a benchmark runs against, from its flags: `--db sqlite` (default: one instance on a temp SQLite file)
 * or `--db postgres` with `--instances N` (N instances on one database of an embedded PostgreSQL started here, at
 * PostgreSQL's full durability: fsync and synchronous_commit on; test/helpers/postgres.ts). For finding where
 * PostgreSQL's time goes: `--pg-setting NAME=VALUE` (repeatable) starts that PostgreSQL with a setting of its
 * configuration changed (an experiment: the durability settings are the benchmark's terms), and `--pg-stats` prints
 * the statements that took the most time, nested ones (inside the store's functions) included, from
 * `pg_stat_statements`, once the servers are stopped. Its times are wall-clock time inside each statement: on a busy
 * machine they include waiting for a core and for row locks.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { parseArgs } from "node:util"
import Database from "better-sqlite3"
import pg from "pg"
import { freshDatabase, testCluster } from "../helpers/postgres.js"
import { spawnBenchServer, type ServerProcess } from "../helpers/spawnServer.js"

export interface BenchServers {
  postgres: boolean
  instances: number
  urls: string[]
  /** How durable a commit is, for the report. */
  durability: string
  /** Where the load starts: `--pg-stats` counts the statements from here on, not the setup's. */
  loadStarts(): Promise<void>
  /** The `n` of `SELECT count(*) AS n …`, read once the servers are stopped. */
  count(query: string): Promise<number>
  stop(): Promise<void>
}

export async function startBenchServers(flags: string[], name: string): Promise<BenchServers> {
  const { values } = parseArgs({
    args: flags,
    options: {
      db: { type: "string", default: "sqlite" },
      instances: { type: "string", default: "1" },
      "pg-setting": { type: "string", multiple: true, default: [] },
      "pg-stats": { type: "boolean", default: false },
    },
  })
  const instances = Number(values.instances)
  if (!["sqlite", "postgres"].includes(values.db!) || !(instances >= 1)) {
    throw new Error("usage: --db sqlite|postgres [--instances N] (several instances need postgres)")
  }
  const postgres = values.db === "postgres"
  if (!postgres && instances !== 1) throw new Error("several instances share a PostgreSQL database: add --db postgres")
  const pgStats = values["pg-stats"]!
  const pgSettings = [
    ...values["pg-setting"]!,
    ...(pgStats ? ["shared_preload_libraries=pg_stat_statements", "pg_stat_statements.track=all"] : []),
  ]
  if (!postgres && pgSettings.length > 0) throw new Error("--pg-setting and --pg-stats are for --db postgres")
  const dir = mkdtempSync(join(tmpdir(), `bench-${name}-`))
  const db = postgres ? await freshDatabase(pgSettings) : join(dir, "server.db")
  const servers: ServerProcess[] = []
  for (let i = 0; i < instances; i++) servers.push(await spawnBenchServer(db))
  const stop = async () => {
    await Promise.all(servers.map((s) => s.stop()))
  }
  return {
    postgres,
    instances,
    urls: servers.map((s) => s.url),
    durability: postgres ? "fsync=on, synchronous_commit=on" : "synchronous=FULL",
    async loadStarts() {
      if (pgStats) await onAdmin(pgSettings, (admin) => admin.query("SELECT pg_stat_statements_reset()"))
    },
    async count(query) {
      await stop()
      if (!postgres) {
        const sqlite = new Database(db, { readonly: true })
        const n = (sqlite.prepare(query).get() as { n: number }).n
        sqlite.close()
        return n
      }
      const client = new pg.Client({ connectionString: db })
      await client.connect()
      const n = Number((await client.query<{ n: string }>(query)).rows[0]!.n)
      await client.end()
      return n
    },
    async stop() {
      await stop()
      rmSync(dir, { recursive: true, force: true })
      if (pgStats) await printStatementStats(db, pgSettings)
    },
  }
}

/** Runs `f` on a connection to the cluster's admin database, where pg_stat_statements' views are. */
async function onAdmin<T>(settings: readonly string[], f: (admin: pg.Client) => Promise<T>): Promise<T> {
  const admin = new pg.Client({ connectionString: await testCluster(settings) })
  await admin.connect()
  try {
    await admin.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    return await f(admin)
  } finally {
    await admin.end()
  }
}

/**
 * The 25 statements of database `url` that took the most time in all since the load started (the servers have
 * stopped, so their backends have flushed their figures).
 */
async function printStatementStats(url: string, settings: readonly string[]): Promise<void> {
  await onAdmin(settings, async (admin) => {
    const { rows } = await admin.query(
      `SELECT calls, round(total_exec_time) AS total_ms, round((total_exec_time / calls)::numeric, 3) AS mean_ms, rows,
              NOT toplevel AS nested, left(regexp_replace(query, '\\s+', ' ', 'g'), 90) AS statement
         FROM pg_stat_statements
        WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1)
        ORDER BY total_exec_time DESC LIMIT 25`,
      [new URL(url).pathname.slice(1)],
    )
    console.log("PostgreSQL statements by total time during the load (pg_stat_statements):")
    console.table(rows)
  })
}
