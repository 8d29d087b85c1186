/**
 * The servers a benchmark runs against, from its flags: `--db sqlite` (default: one instance on a temp SQLite file)
 * or `--db postgres` with `--instances N` (N instances on one database of an embedded PostgreSQL started here, at
 * PostgreSQL's full durability: fsync and synchronous_commit on; test/helpers/postgres.ts).
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { parseArgs } from "node:util"
import Database from "better-sqlite3"
import pg from "pg"
import { freshDatabase } from "../helpers/postgres.js"
import { spawnBenchServer, type ServerProcess } from "../helpers/spawnServer.js"

export interface BenchServers {
  postgres: boolean
  instances: number
  urls: string[]
  /** How durable a commit is, for the report. */
  durability: string
  /** The `n` of `SELECT count(*) AS n …`, read once the servers are stopped. */
  count(query: string): Promise<number>
  stop(): Promise<void>
}

export async function startBenchServers(flags: string[], name: string): Promise<BenchServers> {
  const { values } = parseArgs({
    args: flags,
    options: { db: { type: "string", default: "sqlite" }, instances: { type: "string", default: "1" } },
  })
  const instances = Number(values.instances)
  if (!["sqlite", "postgres"].includes(values.db!) || !(instances >= 1)) {
    throw new Error("usage: --db sqlite|postgres [--instances N] (several instances need postgres)")
  }
  const postgres = values.db === "postgres"
  if (!postgres && instances !== 1) throw new Error("several instances share a PostgreSQL database: add --db postgres")
  const dir = mkdtempSync(join(tmpdir(), `bench-${name}-`))
  const db = postgres ? await freshDatabase() : join(dir, "server.db")
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
    },
  }
}
