/**
 * Rate-limit buckets in PostgreSQL (services/rateLimiter.ts), so that a limit holds across every instance on the
 * database: a client that spreads its requests over the instances draws on one budget. One call of the SQL function
 * `take_tokens` (migrations.ts) refills and takes the buckets of a request together, in one statement.
 */
import pg from "pg"
import type { BucketRequest, TokenBuckets } from "../../services/rateLimiter.js"

export class PgBuckets implements TokenBuckets {
  /**
   * A small pool of its own whose commits do not wait for the WAL flush: a bucket row (one client address's, say) is
   * locked by every request that draws on it, and holding it through an fsync would queue them all behind the disk. A
   * crash may forget the last takes, as a restart of a SQLite server forgets all of them: a budget, not data.
   */
  private readonly pool: pg.Pool

  constructor(url: string) {
    this.pool = new pg.Pool({ connectionString: url, max: 4, options: "-c synchronous_commit=off" })
    this.pool.on("error", () => {})
  }

  async takeTokens(requests: readonly BucketRequest[], n: number, now: number): Promise<number[]> {
    const { rows } = await this.pool.query<{ waits: number[] }>({
      name: "take_tokens",
      text: "SELECT take_tokens($1, $2, $3, $4, $5, $6) AS waits",
      values: [
        requests.map((r) => r.name),
        requests.map((r) => r.key),
        requests.map((r) => r.limit.burst),
        requests.map((r) => r.limit.perMinute),
        n,
        now,
      ],
    })
    return rows[0]!.waits.map(Number)
  }

  async pruneBuckets(now: number): Promise<void> {
    await this.pool.query(
      "DELETE FROM rate_buckets WHERE tokens + greatest(0, $1 - at) * per_minute / 60000 >= burst",
      [now],
    )
  }

  close(): Promise<void> {
    return this.pool.end()
  }
}
