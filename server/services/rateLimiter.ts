/** Token buckets keyed by a string, on the server's clock. Kept in memory: a restart refills them. */
import { AppError } from "../../rpc-schema/errors.js"
import type { Clock } from "../clock.js"

interface Bucket {
  tokens: number
  at: number
}

/** A bucket's shape: how many at once, and how many per minute after that. */
export interface Limit {
  burst: number
  perMinute: number
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>()
  private readonly perMs: number
  private readonly burst: number

  constructor(
    private readonly clock: Clock,
    limit: Limit,
  ) {
    this.burst = limit.burst
    this.perMs = limit.perMinute / 60_000
  }

  private refilled(key: string): Bucket {
    const now = this.clock.now()
    const b = this.buckets.get(key) ?? { tokens: this.burst, at: now }
    b.tokens = Math.min(this.burst, b.tokens + Math.max(0, now - b.at) * this.perMs)
    b.at = now
    this.buckets.set(key, b)
    return b
  }

  /** 0 when `n` tokens are there now, else the milliseconds until they are; takes nothing. */
  wait(key: string, n = 1): number {
    const b = this.refilled(key)
    // More than the burst costs the burst, or it could never pass.
    const cost = Math.min(n, this.burst)
    if (b.tokens >= cost) return 0
    return this.perMs > 0 ? Math.ceil((cost - b.tokens) / this.perMs) : Number.POSITIVE_INFINITY
  }

  /** Takes `n` tokens (all or none); returns 0 when allowed, else the milliseconds until they are back. */
  take(key: string, n = 1): number {
    const waitMs = this.wait(key, n)
    if (waitMs === 0) this.buckets.get(key)!.tokens -= Math.min(n, this.burst)
    return waitMs
  }

  /** Forgets buckets that have refilled completely, so the map stays bounded by recent activity. */
  prune(): void {
    const now = this.clock.now()
    for (const [key, b] of this.buckets) {
      if (b.tokens + (now - b.at) * this.perMs >= this.burst) this.buckets.delete(key)
    }
  }
}

/** The `rate_limited` refusal: `details.retryAfterS` (and the `Retry-After` header) say when to come back. */
export function rateLimited(waitMs: number, what: string): AppError {
  const retryAfterS = Number.isFinite(waitMs) ? Math.max(1, Math.ceil(waitMs / 1000)) : 3600
  return new AppError("rate_limited", `${what}; retry in ${retryAfterS} s`, { retryAfterS })
}

/**
 * Takes one token from each bucket, or none when any of them is short: a refused request costs no budget. Throws
 * `rate_limited` with the reason of the bucket that waits longest.
 */
export function takeAll(buckets: readonly { limiter: RateLimiter; key: string; what: string }[], n = 1): void {
  let worst: { waitMs: number; what: string } | undefined
  for (const b of buckets) {
    const waitMs = b.limiter.wait(b.key, n)
    if (waitMs > 0 && (!worst || waitMs > worst.waitMs)) worst = { waitMs, what: b.what }
  }
  if (worst) throw rateLimited(worst.waitMs, worst.what)
  for (const b of buckets) b.limiter.take(b.key, n)
}
