/**
 * pool: KeyPackages generated per second (the daemon's generator, native crypto provider, one signature key), and
 * the time to fill an empty pool: a real daemon's first maintenance pass after registration (generate 32 + 1,
 * persist, upload, set the last-resort key) against a server in its own process.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { getSuite } from "../../crypto/index.js"
import { newSignatureKeyPair } from "../../daemon/mls/identity.js"
import { generateKeyPackage } from "../../daemon/mls/keyPackages.js"
import { spawnDaemon } from "../helpers/daemon.js"
import { spawnServer } from "../helpers/spawnServer.js"
import { median, report } from "./report.js"

const generated = Number(process.env.POOL_KEYPACKAGES ?? 2000)
const fills = Number(process.env.POOL_FILLS ?? 5)

async function generationRate(): Promise<number> {
  const suite = await getSuite()
  const keys = newSignatureKeyPair()
  const one = () =>
    generateKeyPackage({
      identity: "bench",
      keys,
      suite,
      now: Date.now(),
      lifetimeMs: 14 * 86400_000,
      lastResort: false,
    })
  for (let i = 0; i < 200; i++) await one() // warm-up
  const rates = []
  for (let run = 0; run < 3; run++) {
    const t0 = performance.now()
    for (let i = 0; i < generated; i++) await one()
    rates.push(generated / ((performance.now() - t0) / 1000))
  }
  return median(rates)
}

async function fillTime(url: string, i: number): Promise<{ passMs: number; wallMs: number }> {
  const d = await spawnDaemon({ server: url, testClock: false, validate: false })
  try {
    await d.client.call("events.subscribe", { events: ["pool.changed"] })
    const filled = d.client.next("pool.changed", (p) => p.reason === "maintenance", 30_000)
    const t0 = performance.now()
    await d.client.call("identity.register", { username: `bench${i}` })
    const { status } = await filled
    const wallMs = performance.now() - t0
    if (!status.lastPass?.ok || status.available !== 32 || !status.lastResort) throw new Error("fill failed")
    return { passMs: status.lastPass.finishedAt - status.lastPass.startedAt, wallMs }
  } finally {
    await d.stop()
    rmSync(d.tmp, { recursive: true, force: true })
  }
}

export default async function pool(): Promise<void> {
  const rate = await generationRate()
  const dir = mkdtempSync(join(tmpdir(), "bench-pool-"))
  const server = await spawnServer(["--db", join(dir, "server.db"), "--log-level", "warn"])
  const runs = []
  try {
    for (let i = 0; i < fills; i++) runs.push(await fillTime(server.url, i))
  } finally {
    await server.stop()
    rmSync(dir, { recursive: true, force: true })
  }
  const fillMs = median(runs.map((r) => r.passMs))
  const wallMs = median(runs.map((r) => r.wallMs))
  report(
    "pool",
    [
      { measure: "KeyPackages generated per second", value: Math.round(rate) },
      { measure: "fill an empty pool (32 + 1, upload), first pass, ms", value: fillMs },
      { measure: "register + fill, as a frontend sees it, ms", value: Math.round(wallMs) },
    ],
    { keypackages_per_s: Math.round(rate), fill_ms: fillMs, register_and_fill_ms: Math.round(wallMs), fills },
  )
}
