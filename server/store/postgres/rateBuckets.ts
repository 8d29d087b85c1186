/**
 * Rate-limit buckets in PostgreSQL (services/rateLimiter.ts), so that a limit holds across every instance on the
 * database: a client that spreads its requests over the instances draws on one budget. One call of the SQL function
 * `take_tokens` (migrations.ts) refills and takes the buckets of the requests of one turn of the event loop together.
 */
import pg from "pg"
import type { BucketRequest, TokenBuckets } from "../../services/rateLimiter.js"
import { CallBatcher } from "./callBatcher.js"

/** One request's take: `n` tokens of each of its buckets, all or none. */
interface Take {
  requests: readonly BucketRequest[]
  n: number
  now: number
}

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

  takeTokens(requests: readonly BucketRequest[], n: number, now: number): Promise<number[]> {
    return this.takes.run({ requests, n, now })
  }

  /**
   * The takes of one turn of the event loop in one statement: a bucket every request draws on (one client's, one
   * address's) is then locked and written once for all of them instead of once each, in turn. They are refilled at
   * the latest of their times: a request gains at most what refills while it waited for the others.
   */
  private readonly takes = new CallBatcher<Take, number[]>(async (takes) => {
    const each = <T>(f: (t: Take, r: BucketRequest, i: number) => T) =>
      takes.flatMap((t, i) => t.requests.map((r) => f(t, r, i)))
    const { rows } = await this.pool.query<{ waits: number[] }>({
      name: "take_tokens",
      text: "SELECT take_tokens($1, $2, $3, $4, $5, $6, $7) AS waits",
      values: [
        each((_, _r, i) => i),
        each((_, r) => r.name),
        each((_, r) => r.key),
        each((_, r) => r.limit.burst),
        each((_, r) => r.limit.perMinute),
        each((t) => t.n),
        Math.max(...takes.map((t) => t.now)),
      ],
    })
    const waits = rows[0]!.waits.map(Number)
    let next = 0
    return takes.map((t) => waits.slice(next, (next += t.requests.length)))
  })

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
