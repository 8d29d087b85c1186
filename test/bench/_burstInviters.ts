/**
 * Simulated inviters of the burst benchmark, in their own process: each line on stdin is one tick of claims
 * (`{"claims": N}`); the claims are made over HTTP as N reservations of the target's keys by inviters picked at
 * random (seeded), each then spent at once — what a Commit with the Welcome does to the key — or left to lapse. One
 * JSON line answers each tick. The first line is the job: server URL, the inviters' tokens, the target, the seed
 * and the share of claims that lapse.
 */
import { createInterface } from "node:readline"
import { Pool } from "undici"

interface Job {
  url: string
  tokens: string[]
  target: string
  seed: number
  lapseShare: number
}

export interface TickResult {
  claims: number
  /** Claims that found no ordinary key: answered with the last-resort key or no_keypackage_available. */
  exhausted: number
  lastResort: number
  spent: number
  /** Reservations left to lapse. */
  lapsing: number
  /** Any other answer (a bench bug or a limit in the way). */
  errors: number
}

/** mulberry32: a small seeded generator, so both policies meet the same inviters and the same lapses. */
function random(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const lines = createInterface({ input: process.stdin })
let job: Job | undefined
let pool: Pool | undefined
let next: () => number = Math.random

async function post(token: string, path: string, body: unknown): Promise<{ status: number; body: any }> {
  const res = await pool!.request({
    method: "POST",
    path,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  })
  return { status: res.statusCode, body: await res.body.json() }
}

async function claim(r: TickResult): Promise<void> {
  const token = job!.tokens[Math.floor(next() * job!.tokens.length)]!
  const lapse = next() < job!.lapseShare
  const res = await post(token, "/v1/keypackages/reserve", { target: job!.target })
  r.claims++
  if (res.status === 404 && res.body.error?.code === "no_keypackage_available") {
    r.exhausted++
    return
  }
  if (res.status !== 201) {
    r.errors++
    return
  }
  if (res.body.lastResort) {
    r.exhausted++
    r.lastResort++
  }
  if (lapse) {
    r.lapsing++
    return
  }
  const spent = await post(token, "/v1/keypackages/spend", { ref: res.body.ref, reservationId: res.body.reservationId })
  if (spent.status === 200) r.spent++
  else r.errors++
}

for await (const line of lines) {
  if (!job) {
    job = JSON.parse(line) as Job
    pool = new Pool(job.url, { connections: 8 })
    next = random(job.seed)
    continue
  }
  const { claims } = JSON.parse(line) as { claims: number }
  const r: TickResult = { claims: 0, exhausted: 0, lastResort: 0, spent: 0, lapsing: 0, errors: 0 }
  // In order, one at a time: the draws of the generator, and so the run, are the same on every machine.
  for (let i = 0; i < claims; i++) await claim(r)
  process.stdout.write(JSON.stringify(r) + "\n")
}
await pool?.close()
