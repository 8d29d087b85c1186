/**
 * Load generator of the keydir benchmark, run in its own process: `clients` concurrent loops,
 * each a distinct user, doing reserve+spend pairs against random targets over an undici Pool.
 * Reads its job as JSON on stdin; prints the measurements as JSON on stdout.
 */
import { Pool } from "undici"

interface Job {
  url: string
  /** One token per client. */
  tokens: string[]
  targets: string[]
  durationMs: number
}

const job = JSON.parse(await new Response(process.stdin as unknown as ReadableStream).text()) as Job
const pool = new Pool(job.url, { connections: job.tokens.length, pipelining: 1 })

async function post(token: string, path: string, body: unknown): Promise<{ status: number; body: any }> {
  const res = await pool.request({
    method: "POST",
    path,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  })
  return { status: res.statusCode, body: await res.body.json() }
}

const targets = [...job.targets]
const latencies: number[] = []
const handedOut = new Map<string, number>()
let errors = 0
let exhausted = 0
const deadline = performance.now() + job.durationMs
const started = performance.now()

async function client(token: string) {
  while (performance.now() < deadline && targets.length > 0) {
    const i = Math.floor(Math.random() * targets.length)
    const target = targets[i]!
    const t0 = performance.now()
    const r = await post(token, "/v1/keypackages/reserve", { target })
    if (r.status === 404) {
      exhausted++
      const at = targets.indexOf(target)
      if (at >= 0) targets.splice(at, 1)
      continue
    }
    if (r.status !== 201) {
      errors++
      continue
    }
    handedOut.set(r.body.ref, (handedOut.get(r.body.ref) ?? 0) + 1)
    const s = await post(token, "/v1/keypackages/spend", { ref: r.body.ref, reservationId: r.body.reservationId })
    if (s.status !== 200) {
      errors++
      continue
    }
    latencies.push(performance.now() - t0)
  }
}

await Promise.all(job.tokens.map(client))
const elapsedMs = performance.now() - started
await pool.close()
const doubleHanded = [...handedOut.values()].filter((n) => n > 1).length
process.stdout.write(JSON.stringify({ latencies, elapsedMs, doubleHanded, errors, exhausted, refs: handedOut.size }))
