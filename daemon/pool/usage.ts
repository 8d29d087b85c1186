/**
 * Key-use transparency: records every key event the server sends about this profile's KeyPackages (who reserved,
 * spent, or let a reservation lapse), answers `pool.usage`, raises `pool.suspicious`, and measures the demand the
 * adaptive target follows (demand.ts).
 */
import type { PoolUsageResult } from "../../rpc-schema/daemon/pool.js"
import type { Clock } from "../clock.js"
import type { EventBus } from "../events.js"
import type { UsageStore } from "../store/usageStore.js"
import type { KeyEventItem } from "../sync/stream.js"
import { peakMemoryMs, rateTimeConstantMs, smoothedRate, type Measured } from "./demand.js"

const hourMs = 3600_000
/** Window of the suspicion rules. */
export const suspicionWindowMs = hourMs
/** Strangers are suspicious when they made more than this share of at least `strangersMinClaims` claims. */
const strangersShare = 0.5
const strangersMinClaims = 8
/** Key events are kept this long for pool.usage. */
const usageKeepMs = 30 * 24 * hourMs

export interface KeyUsageDeps {
  store: UsageStore
  events: EventBus
  clock: Clock
  /** pool.suspicious fires when one requester lets more than this many reservations lapse in the window. */
  suspiciousLapses: number
  /** Users who share a group with this profile now. */
  groupMates: () => ReadonlySet<string>
}

export class KeyUsage {
  /** When the current burst (reservations since the last maintenance pass) started. */
  private burstStart: number
  /** When pool.suspicious last fired, per requester ("" for strangers): once per window. */
  private readonly notified = new Map<string, number>()

  constructor(private readonly d: KeyUsageDeps) {
    this.burstStart = d.clock.now()
  }

  /** Records a key event from the server; the caller runs it in the transaction that applies the event. */
  record(item: KeyEventItem): void {
    if (item.kind === "poolLow") return
    const now = this.d.clock.now()
    const kind = ({ keyReserved: "reserved", keySpent: "spent", keyReleased: "released" } as const)[item.kind]
    this.d.store.record(kind, item.by, item.ref, item.lastResort, now)
    if (kind === "released") this.checkLapses(item.by, now)
    if (kind === "reserved") this.checkStrangers(now)
  }

  private once(key: string, now: number): boolean {
    const last = this.notified.get(key)
    if (last !== undefined && now - last < suspicionWindowMs) return false
    this.notified.set(key, now)
    return true
  }

  private checkLapses(requester: string, now: number): void {
    const lapsed = this.d.store.count("released", requester, now - suspicionWindowMs)
    if (lapsed <= this.d.suspiciousLapses || !this.once(requester, now)) return
    this.d.events.emit("pool.suspicious", {
      reason: "lapses",
      username: requester,
      count: lapsed,
      total: Math.max(lapsed, this.d.store.count("reserved", requester, now - suspicionWindowMs)),
      windowMs: suspicionWindowMs,
      threshold: this.d.suspiciousLapses,
    })
  }

  private checkStrangers(now: number): void {
    const recent = this.d.store.reservedSince(now - suspicionWindowMs)
    if (recent.length < strangersMinClaims) return
    const mates = this.d.groupMates()
    const byStrangers = recent.filter((r) => !mates.has(r.requester)).length
    if (byStrangers <= recent.length * strangersShare || !this.once("", now)) return
    this.d.events.emit("pool.suspicious", {
      reason: "strangers",
      username: null,
      count: byStrangers,
      total: recent.length,
      windowMs: suspicionWindowMs,
      threshold: strangersShare,
    })
  }

  report(since: number): PoolUsageResult {
    const until = this.d.clock.now()
    const mates = this.d.groupMates()
    const requesters = this.d.store.perRequester(since).map((r) => ({
      username: r.requester,
      groupMate: mates.has(r.requester),
      reserved: r.reserved,
      spent: r.spent,
      lapsed: r.released,
      lastResort: r.lastResort,
      lastAt: r.lastAt,
    }))
    const sum = (f: (r: (typeof requesters)[number]) => number) => requesters.reduce((n, r) => n + f(r), 0)
    return {
      since,
      until,
      requesters,
      total: {
        reserved: sum((r) => r.reserved),
        spent: sum((r) => r.spent),
        lapsed: sum((r) => r.lapsed),
        byStrangers: sum((r) => (r.groupMate ? 0 : r.reserved)),
      },
    }
  }

  /**
   * A maintenance pass starts: the reservations since the previous one form a burst the pool had to outlast. Keeps
   * the largest per hour, and forgets old events.
   */
  endBurst(): void {
    const now = this.d.clock.now()
    const claims = this.d.store.reservedBetween(this.burstStart, now)
    if (claims > 0) this.d.store.recordBurst(claims, now)
    this.burstStart = now
    this.d.store.prune(now - usageKeepMs, now - peakMemoryMs)
  }

  measured(): Measured {
    const now = this.d.clock.now()
    const peak = this.d.store.peak(now - peakMemoryMs)
    const recent = this.d.store.reservedSince(now - 8 * rateTimeConstantMs).map((r) => r.at)
    return { reservationsPerHour: smoothedRate(recent, now), peakBurst: peak?.claims ?? 0, peakAt: peak?.at ?? null }
  }
}
