/**
 * Token buckets keyed by a string, on the server's clock. A `RateLimiter` names a kind of bucket and its shape; the
 * buckets themselves live in the store (`TokenBuckets`), so that every instance on one database draws on the same
 * ones: in memory for SQLite (one instance per file; a restart refills them), in a table for PostgreSQL
 * (store/postgres/rateBuckets.ts).
 */
import { AppError } from "../../rpc-schema/errors.js"
import type { Clock } from "../clock.js"

/** A bucket's shape: how many at once, and how many per minute after that. */
export interface Limit {
  burst: number
  perMinute: number
}

/** A kind of bucket (one per key): its name, unique in the server, and its shape. */
export class RateLimiter {
  constructor(
    readonly name: string,
    readonly limit: Limit,
  ) {}
}

export interface BucketRequest {
  name: string
  key: string
  limit: Limit
}

/** Where buckets live. */
export interface TokenBuckets {
  /**
   * Takes `n` tokens (a bucket's burst at most: more could never pass) from each bucket, all or none, in one atomic
   * step; answers, per bucket, 0 when it had them, else the milliseconds until it will. Nothing is taken unless all
   * are 0.
   */
  takeTokens(buckets: readonly BucketRequest[], n: number, now: number): Promise<number[]>
  /** Forgets buckets that have refilled completely, so that they stay bounded by recent activity. */
  pruneBuckets(now: number): Promise<void>
}

/** A bucket's refill: the tokens it holds at `now`, and the wait for `cost` of them. */
export function refill(limit: Limit, tokens: number, at: number, now: number, cost: number) {
  const perMs = limit.perMinute / 60_000
  const held = Math.min(limit.burst, tokens + Math.max(0, now - at) * perMs)
  const waitMs = held >= cost ? 0 : perMs > 0 ? Math.ceil((cost - held) / perMs) : Number.POSITIVE_INFINITY
  return { held, waitMs }
}

/** Buckets in this process's memory. */
export class MemoryBuckets implements TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number; limit: Limit }>()

  async takeTokens(requests: readonly BucketRequest[], n: number, now: number): Promise<number[]> {
    const states = requests.map((r) => {
      const id = `${r.name}\0${r.key}`
      const b = this.buckets.get(id) ?? { tokens: r.limit.burst, at: now, limit: r.limit }
      const cost = Math.min(n, r.limit.burst)
      return { id, cost, limit: r.limit, ...refill(r.limit, b.tokens, b.at, now, cost) }
    })
    const waits = states.map((s) => s.waitMs)
    if (waits.every((w) => w === 0)) {
      for (const s of states) this.buckets.set(s.id, { tokens: s.held - s.cost, at: now, limit: s.limit })
    }
    return waits
  }

  async pruneBuckets(now: number): Promise<void> {
    for (const [id, b] of this.buckets)
      if (refill(b.limit, b.tokens, b.at, now, 0).held >= b.limit.burst) this.buckets.delete(id)
  }
}

/** The `rate_limited` refusal: `details.retryAfterS` (and the `Retry-After` header) say when to come back. */
export function rateLimited(waitMs: number, what: string): AppError {
  const retryAfterS = Number.isFinite(waitMs) ? Math.max(1, Math.ceil(waitMs / 1000)) : 3600
  return new AppError("rate_limited", `${what}; retry in ${retryAfterS} s`, { retryAfterS })
}

/**
 * Takes `n` tokens from each bucket, or none when any of them is short: a refused request costs no budget. Throws
 * `rate_limited` with the reason of the bucket that waits longest.
 */
export async function takeAll(
  store: TokenBuckets,
  clock: Clock,
  buckets: readonly { limiter: RateLimiter; key: string; what: string }[],
  n = 1,
): Promise<void> {
  const requests = buckets.map((b) => ({ name: b.limiter.name, key: b.key, limit: b.limiter.limit }))
  const waits = await store.takeTokens(requests, n, clock.now())
  let worst: { waitMs: number; what: string } | undefined
  waits.forEach((waitMs, i) => {
    if (waitMs > 0 && (!worst || waitMs > worst.waitMs)) worst = { waitMs, what: buckets[i]!.what }
  })
  if (worst) throw rateLimited(worst.waitMs, worst.what)
}
