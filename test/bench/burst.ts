/**
 * burst: the pool under a burst of claims, fixed policy against adaptive, in one run. A real server (in this
 * process, on a ManualClock) and a real daemon for the target; 30 simulated inviters in another process
 * (`_burstInviters.ts`) claim the target's keys over HTTP — each claim spent at once, as the Commit carrying its
 * Welcome does, or left to lapse (20%, seeded) — 300 claims in 30 ticks of 2 s of simulated time (60 s), with bursts that
 * grow from 18 to 50 claims in one tick.
 *
 * The verdict does not depend on the machine's speed: time is the servers' test clocks, moved one tick at a time;
 * the daemon's event-triggered refill is put off (`--pool-event-delay-ms`) and run between ticks instead
 * (`pool.refresh`, once the daemon has heard of every claim of the tick), so a tick is exactly the claims that land
 * between two refills however long they take. `exhausted` counts claims that found no ordinary key.
 */
import { spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"
import type { PoolStatusResult } from "../../rpc-schema/daemon/pool.js"
import { buildApp } from "../../server/app.js"
import { ManualClock } from "../../server/clock.js"
import { defaultConfig, type ServerConfig } from "../../server/config.js"
import { spawnDaemon, type TestDaemon } from "../helpers/daemon.js"
import { newUser } from "../helpers/users.js"
import { report } from "./report.js"
import type { TickResult } from "./_burstInviters.js"

const here = dirname(fileURLToPath(import.meta.url))
const tickMs = 2000
const ticks = 30
const inviters = 30
const lapseShare = 0.2
const seed = 14
/** Claims per tick: 5 at a steady pace, and every fifth tick a burst larger than the last. */
const bursts: Record<number, number> = { 5: 18, 10: 26, 15: 35, 20: 46, 25: 50 }
const schedule = Array.from({ length: ticks }, (_, i) => bursts[i] ?? 5)

const unlimited = 1e9
const serverConfig = (dbPath: string, clock: ManualClock): ServerConfig => ({
  ...defaultConfig,
  dbPath,
  clock,
  logLevel: "silent",
  gcIntervalMs: 0,
  // Lapsed reservations return within 5 ticks.
  reservationTtlMs: 5 * tickMs,
  // The server's budgets are not under test here: the daemon's pool is.
  ...{ reserveBurst: unlimited, reserveTargetBurst: unlimited, reserveStrangerBurst: unlimited },
  ...{ reserveIpBurst: unlimited, registerIpBurst: unlimited, challengeIpBurst: unlimited },
})

/** Counts the daemon's pool.changed notifications by reason; `until` waits for a count. */
function poolEvents(d: TestDaemon) {
  const counts = new Map<string, number>()
  const waiters: { reason: string; n: number; resolve: () => void }[] = []
  d.client.on("pool.changed", (p) => {
    counts.set(p.reason, (counts.get(p.reason) ?? 0) + 1)
    for (const w of waiters.filter((w) => (counts.get(w.reason) ?? 0) >= w.n)) {
      waiters.splice(waiters.indexOf(w), 1)
      w.resolve()
    }
  })
  return {
    until(reason: string, n: number): Promise<void> {
      if ((counts.get(reason) ?? 0) >= n) return Promise.resolve()
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`daemon heard ${counts.get(reason) ?? 0} of ${n} ${reason}`)),
          60_000,
        )
        waiters.push({ reason, n, resolve: () => (clearTimeout(timer), resolve()) })
      })
    },
  }
}

/** The inviters' process: `tick(n)` makes n claims and answers what happened. */
function startInviters(job: unknown) {
  const child = spawn(process.execPath, ["--import", "tsx", join(here, "_burstInviters.ts")], {
    stdio: ["pipe", "pipe", "inherit"],
  })
  const answers = createInterface({ input: child.stdout! })[Symbol.asyncIterator]()
  child.stdin!.write(JSON.stringify(job) + "\n")
  return {
    async tick(claims: number): Promise<TickResult> {
      child.stdin!.write(JSON.stringify({ claims }) + "\n")
      const line = await answers.next()
      if (line.done) throw new Error("the inviters' process ended")
      return JSON.parse(line.value) as TickResult
    },
    stop: () => new Promise<void>((resolve) => (child.once("exit", () => resolve()), child.stdin!.end())),
  }
}

interface PolicyResult {
  claims: number
  exhausted: number
  last_resort_handed: number
  spent: number
  lapsed: number
  errors: number
  /** The largest burst the daemon measured between passes, and its target at the end. */
  peak_burst: number
  final_target: number
  target_reason: string
  /** Fewest ordinary keys available right after a refill (what the next tick could take). */
  min_available_after_refill: number
}

async function runPolicy(policy: "fixed" | "adaptive"): Promise<PolicyResult> {
  const dir = mkdtempSync(join(tmpdir(), "bench-burst-"))
  const clock = new ManualClock()
  const server = await buildApp(serverConfig(join(dir, "server.db"), clock))
  const url = await server.http.listen({ host: "127.0.0.1", port: 0 })
  const args = ["--pool-event-delay-ms", String(2 ** 31 - 1), ...(policy === "fixed" ? ["--pool-fixed"] : [])]
  const d = await spawnDaemon({ server: url, profile: "target", args })
  try {
    await d.client.call("debug.setClock", { now: clock.now() })
    await d.client.call("events.subscribe", { events: ["pool.changed"] })
    const events = poolEvents(d)
    await d.client.call("identity.register", { username: "target" })
    let status: PoolStatusResult = await d.client.call("pool.refresh")
    const users = await Promise.all(Array.from({ length: inviters }, (_, i) => newUser(url, `inviter${i}`)))
    const load = startInviters({ url, tokens: users.map((u) => u.token), target: "target", seed, lapseShare })
    const total = { claims: 0, exhausted: 0, lastResort: 0, spent: 0, lapsed: 0, errors: 0, reserved: 0 }
    let minAvailable = status.available
    for (const claims of schedule) {
      const r = await load.tick(claims)
      total.claims += r.claims
      total.exhausted += r.exhausted
      total.lastResort += r.lastResort
      total.spent += r.spent
      total.errors += r.errors
      total.reserved += r.claims - (r.exhausted - r.lastResort) - r.errors
      // The daemon hears of every claim of the tick before the refill, as its event-triggered pass would.
      await events.until("reserved", total.reserved)
      await events.until("spent", total.spent)
      clock.advance(tickMs)
      total.lapsed += (await server.directory.collectGarbage()).lapsedReservations.length
      await events.until("released", total.lapsed)
      await d.client.call("debug.advanceClock", { ms: tickMs })
      status = await d.client.call("pool.refresh")
      minAvailable = Math.min(minAvailable, status.available)
    }
    await load.stop()
    return {
      claims: total.claims,
      exhausted: total.exhausted,
      last_resort_handed: total.lastResort,
      spent: total.spent,
      lapsed: total.lapsed,
      errors: total.errors,
      peak_burst: status.demand.peakBurst,
      final_target: status.demand.target,
      target_reason: status.demand.reason,
      min_available_after_refill: minAvailable,
    }
  } finally {
    await d.stop()
    await server.close()
    rmSync(d.tmp, { recursive: true, force: true })
    rmSync(dir, { recursive: true, force: true })
  }
}

export default async function burst(): Promise<void> {
  const fixed = await runPolicy("fixed")
  const adaptive = await runPolicy("adaptive")
  report(
    "burst",
    [
      { policy: "fixed", ...fixed },
      { policy: "adaptive", ...adaptive },
    ],
    { adaptive, fixed, schedule, tick_ms: tickMs, inviters, lapse_share: lapseShare, seed },
  )
  const met = adaptive.exhausted === 0 && adaptive.last_resort_handed === 0 && fixed.exhausted > 0
  console.log(met ? "target met: adaptive 0 exhausted, fixed exhausted" : "TARGET MISSED")
  if (!met) process.exitCode = 1
}
