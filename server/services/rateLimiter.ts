/** Token buckets keyed by a string, on the server's clock. Kept in memory: a restart refills them. */
import type { Clock } from "../clock.js"

interface Bucket {
  tokens: number
  at: number
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>()
  private readonly perMs: number

  constructor(
    private readonly clock: Clock,
    private readonly burst: number,
    perMinute: number,
  ) {
    this.perMs = perMinute / 60_000
  }

  /** Takes one token; returns 0 when allowed, else the milliseconds until a token is back. */
  take(key: string): number {
    const now = this.clock.now()
    const b = this.buckets.get(key) ?? { tokens: this.burst, at: now }
    b.tokens = Math.min(this.burst, b.tokens + Math.max(0, now - b.at) * this.perMs)
    b.at = now
    this.buckets.set(key, b)
    if (b.tokens >= 1) {
      b.tokens -= 1
      return 0
    }
    return this.perMs > 0 ? Math.ceil((1 - b.tokens) / this.perMs) : Number.POSITIVE_INFINITY
  }

  /** Forgets buckets that have refilled completely, so the map stays bounded by recent activity. */
  prune(): void {
    const now = this.clock.now()
    for (const [key, b] of this.buckets) {
      if (b.tokens + (now - b.at) * this.perMs >= this.burst) this.buckets.delete(key)
    }
  }
}
