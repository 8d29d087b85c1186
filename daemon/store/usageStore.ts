/**
 * Key events about this profile's KeyPackages (who reserved, spent or let a reservation lapse) and the bursts of
 * reservations between maintenance passes: what `pool.usage`, `pool.suspicious` and the adaptive target read.
 */
import type { Db } from "./database.js"

export type UsageKind = "reserved" | "spent" | "released"

export interface UsageCounts {
  requester: string
  reserved: number
  spent: number
  released: number
  lastResort: number
  lastAt: number
}

const hourMs = 3600_000

export class UsageStore {
  private readonly s

  constructor(db: Db) {
    this.s = {
      insert: db.prepare("INSERT INTO key_usage (at, kind, requester, ref, last_resort) VALUES (?, ?, ?, ?, ?)"),
      perRequester: db.prepare<[number], UsageCounts>(
        `SELECT requester,
           sum(kind = 'reserved') AS reserved, sum(kind = 'spent') AS spent, sum(kind = 'released') AS released,
           sum(kind = 'reserved' AND last_resort = 1) AS lastResort, max(at) AS lastAt
         FROM key_usage WHERE at >= ? GROUP BY requester ORDER BY reserved DESC, requester`,
      ),
      count: db.prepare<[string, number, string], { n: number }>(
        "SELECT count(*) AS n FROM key_usage WHERE kind = ? AND at > ? AND requester = ?",
      ),
      reservedBetween: db.prepare<[number, number], { n: number }>(
        "SELECT count(*) AS n FROM key_usage WHERE kind = 'reserved' AND at >= ? AND at < ?",
      ),
      reservedSince: db.prepare<[number], { at: number; requester: string }>(
        "SELECT at, requester FROM key_usage WHERE kind = 'reserved' AND at > ? ORDER BY at",
      ),
      prune: db.prepare("DELETE FROM key_usage WHERE at < ?"),
      burst: db.prepare(
        `INSERT INTO pool_bursts (hour, claims, at) VALUES (?, ?, ?)
         ON CONFLICT (hour) DO UPDATE SET claims = excluded.claims, at = excluded.at WHERE excluded.claims > claims`,
      ),
      peak: db.prepare<[number], { claims: number; at: number }>(
        "SELECT claims, at FROM pool_bursts WHERE hour >= ? ORDER BY claims DESC, at DESC LIMIT 1",
      ),
      pruneBursts: db.prepare("DELETE FROM pool_bursts WHERE hour < ?"),
    }
  }

  record(kind: UsageKind, requester: string, ref: string, lastResort: boolean, at: number): void {
    this.s.insert.run(at, kind, requester, ref, lastResort ? 1 : 0)
  }

  /** Counts per requester of the events at or after `since`, most reservations first. */
  perRequester(since: number): UsageCounts[] {
    return this.s.perRequester.all(since)
  }

  /** Events of one kind by one requester after `after`. */
  count(kind: UsageKind, requester: string, after: number): number {
    return this.s.count.get(kind, after, requester)!.n
  }

  /** Reservations after `after`, oldest first. */
  reservedSince(after: number): { at: number; requester: string }[] {
    return this.s.reservedSince.all(after)
  }

  /** Reservations in [from, to). */
  reservedBetween(from: number, to: number): number {
    return this.s.reservedBetween.get(from, to)!.n
  }

  /** Keeps the largest burst of each hour. */
  recordBurst(claims: number, at: number): void {
    this.s.burst.run(Math.floor(at / hourMs), claims, at)
  }

  /** The largest burst since `since`, if any. */
  peak(since: number): { claims: number; at: number } | undefined {
    return this.s.peak.get(Math.floor(since / hourMs))
  }

  /** Forgets events before `usageBefore` and bursts before `burstsBefore`. */
  prune(usageBefore: number, burstsBefore: number): void {
    this.s.prune.run(usageBefore)
    this.s.pruneBursts.run(Math.floor(burstsBefore / hourMs))
  }
}
