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

  /** Takes `n` tokens (all or none); returns 0 when allowed, else the milliseconds until they are back. */
  take(key: string, n = 1): number {
    const now = this.clock.now()
    const b = this.buckets.get(key) ?? { tokens: this.burst, at: now }
    b.tokens = Math.min(this.burst, b.tokens + Math.max(0, now - b.at) * this.perMs)
    b.at = now
    this.buckets.set(key, b)
    // More than the burst costs the burst, or it could never pass.
    const cost = Math.min(n, this.burst)
    if (b.tokens >= cost) {
      b.tokens -= cost
      return 0
    }
    return this.perMs > 0 ? Math.ceil((cost - b.tokens) / this.perMs) : Number.POSITIVE_INFINITY
  }

  /** Forgets buckets that have refilled completely, so the map stays bounded by recent activity. */
  prune(): void {
    const now = this.clock.now()
    for (const [key, b] of this.buckets) {
      if (b.tokens + (now - b.at) * this.perMs >= this.burst) this.buckets.delete(key)
    }
  }
}
