/**
 * The server's PostgreSQL database: a connection pool, the migrations, and `transaction`, the one way every change
 * is made. A transaction runs at READ COMMITTED; what must not interleave is serialised by row locks (`SELECT … FOR
 * UPDATE` on the group, the device, the key) taken inside it, and a deadlock, a serialisation failure or a
 * unique-key race (two concurrent inserts of one key: the loser then finds the winner's row) runs it again from the
 * start. After COMMIT it rings the doorbell (./doorbell.ts) with what it changed, so that the other
 * instances on this database wake their streams.
 */
import { randomUUID } from "node:crypto"
import pg from "pg"
import type { InboxItem } from "../../../rpc-schema/server/http/inbox.js"
import { SchemaTooNew } from "../../../shared/migrate.js"
import { DoorbellSender, type Ring } from "./doorbell.js"
import { pgMigrations } from "./migrations.js"
import { PgBuckets } from "./rateBuckets.js"

/** Whether a --db value names a PostgreSQL database rather than a SQLite file. */
export const isPostgresUrl = (db: string): boolean => /^postgres(ql)?:\/\//.test(db)

// BIGINT (times in ms, seqs, counts) as JS numbers: every value the server stores is below 2^53.
const int8 = 20
const types = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === int8 && format !== "binary"
      ? Number
      : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
}

/** Statement names by text: pg prepares a named statement once per connection and reuses it. */
const statementNames = new Map<string, string>()
function statement(text: string, values: readonly unknown[]): pg.QueryConfig {
  let name = statementNames.get(text)
  if (name === undefined) statementNames.set(text, (name = `s${statementNames.size}`))
  return { name, text, values: values as unknown[] }
}

/** Bytes as pg sends them (a Buffer over the same memory). */
export const bytes = (b: Uint8Array): Buffer => (Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.length))

/** Runs queries on one connection. */
export class Queries {
  constructor(protected readonly client: pg.ClientBase | pg.Pool) {}

  async rows<T>(text: string, values: readonly unknown[] = []): Promise<T[]> {
    return (await this.client.query<T & pg.QueryResultRow>(statement(text, values))).rows
  }

  async row<T>(text: string, values: readonly unknown[] = []): Promise<T | undefined> {
    return (await this.rows<T>(text, values))[0]
  }

  /** Runs SQL text of several statements, without parameters (migrations). */
  async exec(text: string): Promise<void> {
    await this.client.query(text)
  }

  /** Runs a statement; answers how many rows it changed. */
  async run(text: string, values: readonly unknown[] = []): Promise<number> {
    return (await this.client.query(statement(text, values))).rowCount ?? 0
  }
}

interface PendingItem {
  device: string
  kind: string
  groupId: string | null
  item: string
  createdAt: number
}

/** One transaction: its queries, the inbox items it adds, and the rings it sends after COMMIT. */
export class Tx extends Queries {
  readonly rings: Ring[] = []
  private readonly items: PendingItem[] = []
  /** How many of `items` are written (`writeInbox`). */
  private written = 0

  /** Adds `item` to the inbox of `device`: written at the end of the transaction (`writeInbox`). */
  addInbox(device: string, item: InboxItem, now: number): void {
    const groupId = "groupId" in item ? item.groupId : null
    this.items.push({ device, kind: item.kind, groupId, item: JSON.stringify(item), createdAt: now })
  }

  ring(r: Ring): void {
    this.rings.push(r)
  }

  /** Where this transaction's pending inbox items and rings stand, to undo an operation's on its savepoint. */
  mark(): { items: number; rings: number } {
    return { items: this.items.length, rings: this.rings.length }
  }

  /** Forgets the inbox items and rings added since `m` (their operation was rolled back to its savepoint). */
  undoTo(m: { items: number; rings: number }): void {
    // Items written since were rolled back with the savepoint too.
    this.items.length = m.items
    this.written = Math.min(this.written, m.items)
    this.rings.length = m.rings
  }

  /**
   * Writes the inbox items added since the last write (migrations.ts's `inbox_write`): it locks the inbox head of
   * each device (in one order, so two transactions never wait on each other's heads) and only then draws the items'
   * ids, so that a device's ids grow in commit order and a stream past id N never misses a smaller one committed after
   * it. Called last in the transaction, and before a statement that writes items itself and must come after these.
   */
  async writeInbox(): Promise<void> {
    const items = this.items.slice(this.written)
    if (items.length === 0) return
    this.written = this.items.length
    const col = <K extends keyof PendingItem>(k: K) => items.map((i) => i[k])
    await this.run("SELECT inbox_write($1, $2, $3, $4, $5)", [
      col("device"),
      col("kind"),
      col("groupId"),
      col("item"),
      col("createdAt"),
    ])
    this.ring({ k: "inbox", devices: [...new Set(col("device"))] })
  }
}

/** SQLSTATEs after which a transaction is simply run again: deadlock, serialisation failure, unique-key race. */
export const retryable = new Set(["40P01", "40001", "23505"])
export const sqlState = (err: unknown): string | undefined =>
  typeof err === "object" && err !== null && "code" in err && typeof err.code === "string" ? err.code : undefined

export class PgDatabase extends Queries {
  private constructor(
    /** Names this process in its rings, so that it skips its own (it tells its own hub directly). */
    readonly instance: string,
    readonly pool: pg.Pool,
    /** Rate-limit buckets, on connections of their own (rateBuckets.ts). */
    readonly buckets: PgBuckets,
    /** Rings the other instances after each COMMIT. */
    readonly doorbell: DoorbellSender,
  ) {
    super(pool)
  }

  /** Connects (a pool of `max` connections: `--db-connections`) and applies the pending migrations. */
  static async open(url: string, max: number): Promise<PgDatabase> {
    const pool = new pg.Pool({ connectionString: url, max, types })
    // An idle connection the server dropped (restart, admin): the pool discards it; the next query opens another.
    pool.on("error", () => {})
    const instance = randomUUID()
    const db = new PgDatabase(instance, pool, new PgBuckets(url), new DoorbellSender(url, instance))
    try {
      await db.migrate()
    } catch (err) {
      await db.close()
      throw err
    }
    return db
  }

  /** Applies the pending migrations under an advisory lock: instances starting together migrate once. */
  private async migrate(): Promise<void> {
    await this.transaction(async (tx) => {
      await tx.run("SELECT pg_advisory_xact_lock(7183)")
      await tx.run("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
      const current = (await tx.row<{ version: number }>("SELECT version FROM schema_version"))?.version ?? 0
      if (current > pgMigrations.length) {
        throw new SchemaTooNew(
          `the database has schema version ${current}, newer than this mls-server knows (${pgMigrations.length}): ` +
            "run a newer mls-server",
        )
      }
      for (let v = current; v < pgMigrations.length; v++) await tx.exec(pgMigrations[v]!)
      await tx.run("DELETE FROM schema_version")
      await tx.run("INSERT INTO schema_version (version) VALUES ($1)", [pgMigrations.length])
    })
  }

  /**
   * Runs `fn` in one transaction and answers what it answered once COMMIT returned (durable: synchronous_commit is
   * left on). A throw rolls everything back. Rings the doorbell after COMMIT.
   */
  async transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    const client = await this.pool.connect()
    let broken = false
    let released = false
    try {
      for (let attempt = 1; ; attempt++) {
        const tx = new Tx(client)
        await client.query("BEGIN")
        try {
          const value = await fn(tx)
          await tx.writeInbox()
          await client.query("COMMIT")
          client.release()
          released = true
          // A crash between COMMIT and here loses only this wake-up; see server/store/postgres/README.md.
          await this.doorbell.send(tx.rings)
          return value
        } catch (err) {
          await client.query("ROLLBACK").catch(() => (broken = true))
          if (broken || attempt >= 5 || !retryable.has(sqlState(err) ?? "")) throw err
        }
      }
    } finally {
      if (!released) client.release(broken)
    }
  }

  /**
   * Runs `fn`, whose change is one statement committed on its own (a function of migrations.ts): no BEGIN and COMMIT
   * round trips around it. Its other statements, if any, only read. Runs again on the same failures as a transaction;
   * then rings what `fn` rang. It must add no inbox items: those are written in a transaction's last statement.
   */
  async autocommit<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const tx = new Tx(this.pool)
      try {
        const value = await fn(tx)
        if (tx.mark().items > 0) throw new Error("autocommit: inbox items need a transaction")
        await this.doorbell.send(tx.rings)
        return value
      } catch (err) {
        if (attempt >= 5 || !retryable.has(sqlState(err) ?? "")) throw err
      }
    }
  }

  /** Runs `statement`, one statement that is a whole change by itself (`autocommit`), and rings what `rings` makes of its answer. */
  change<T>(statement: (q: Queries) => Promise<T>, rings: (answer: T) => Ring[]): Promise<T> {
    return this.autocommit(async (tx) => {
      const answer = await statement(tx)
      for (const r of rings(answer)) tx.ring(r)
      return answer
    })
  }

  async close(): Promise<void> {
    await this.buckets.close()
    await this.doorbell.close()
    await this.pool.end()
  }
}
