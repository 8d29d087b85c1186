/**
 * Rate-limit buckets in PostgreSQL (services/rateLimiter.ts), so that a limit holds across every instance on the
 * database: a client that spreads its requests over the instances behind a load balancer draws on one budget. The
 * buckets of one request are locked in one order, refilled, and taken together in one transaction.
 */
import { refill, type BucketRequest, type TokenBuckets } from "../../services/rateLimiter.js"
import type { PgDatabase } from "./database.js"

export class PgBuckets implements TokenBuckets {
  constructor(private readonly db: PgDatabase) {}

  takeTokens(requests: readonly BucketRequest[], n: number, now: number): Promise<number[]> {
    const order = requests
      .map((_, i) => i)
      .sort((x, y) => {
        const a = requests[x]!
        const b = requests[y]!
        return a.name === b.name ? (a.key < b.key ? -1 : a.key > b.key ? 1 : 0) : a.name < b.name ? -1 : 1
      })
    return this.db.transaction(async (tx) => {
      const states = new Array<{ held: number; waitMs: number; cost: number }>(requests.length)
      for (const i of order) {
        const r = requests[i]!
        // Creates a full bucket, or locks the one there.
        const b = (await tx.row<{ tokens: number; at: number }>(
          `INSERT INTO rate_buckets (name, key, tokens, at, burst, per_minute) VALUES ($1, $2, $3, $4, $3, $5)
           ON CONFLICT (name, key) DO UPDATE SET name = excluded.name RETURNING tokens, at`,
          [r.name, r.key, r.limit.burst, now, r.limit.perMinute],
        ))!
        const cost = Math.min(n, r.limit.burst)
        states[i] = { cost, ...refill(r.limit, b.tokens, b.at, now, cost) }
      }
      if (states.every((s) => s.waitMs === 0)) {
        for (const i of order) {
          const r = requests[i]!
          await tx.run(
            `UPDATE rate_buckets SET tokens = $3, at = $4, burst = $5, per_minute = $6 WHERE name = $1 AND key = $2`,
            [r.name, r.key, states[i]!.held - states[i]!.cost, now, r.limit.burst, r.limit.perMinute],
          )
        }
      }
      return states.map((s) => s.waitMs)
    })
  }

  async pruneBuckets(now: number): Promise<void> {
    await this.db.run("DELETE FROM rate_buckets WHERE tokens + greatest(0, $1 - at) * per_minute / 60000 >= burst", [
      now,
    ])
  }
}
