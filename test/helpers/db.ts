/**
 * Raw SQL on a test server's database, whichever store it runs on (SQLite or PostgreSQL): for what the HTTP API does
 * not show (row counts, the audit log) and for tampering with stored state. Queries use `?` placeholders; on
 * PostgreSQL they become `$1`, `$2`, …, so one query serves both where the SQL is common to both.
 */
import type { ServerApp } from "../../server/app.js"
import { PgStore } from "../../server/store/postgres/pgStore.js"

type Store = ServerApp["store"]

export async function sql<T = Record<string, unknown>>(
  store: Store,
  query: string,
  ...params: unknown[]
): Promise<T[]> {
  if (store instanceof PgStore) {
    let n = 0
    return store.db.rows<T>(
      query.replace(/\?/g, () => `$${++n}`),
      params,
    )
  }
  const statement = store.db.prepare(query)
  return (statement.reader ? statement.all(...params) : (statement.run(...params), [])) as T[]
}

/** The one number a `SELECT count(*) AS n …` answers. */
export async function count(store: Store, query: string, ...params: unknown[]): Promise<number> {
  return (await sql<{ n: number }>(store, query, ...params))[0]!.n
}

/**
 * Row counts of every table, to show that a rejected request changed nothing. Rate-limit buckets are left out: a
 * request refused after its budget was taken still spent it (on SQLite they are kept in memory, not in a table).
 */
export async function rowCounts(store: Store): Promise<Record<string, number>> {
  const tables =
    store instanceof PgStore
      ? "SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'rate_buckets' ORDER BY tablename"
      : "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
  const names = (await sql<{ name: string }>(store, tables)).map((t) => t.name)
  const counts: Record<string, number> = {}
  for (const name of names) counts[name] = await count(store, `SELECT count(*) AS n FROM "${name}"`)
  return counts
}
