/**
 * Load generator of the keydir benchmark, run in its own process: `clients` concurrent loops,
 * each a distinct user, doing reserve+spend pairs against random targets over an undici Pool (one per server
 * instance; client i talks to instance i mod N).
 * Reads its job as JSON on stdin; prints the measurements as JSON on stdout.
 */
import { Pool } from "undici"

interface Job {
  urls: string[]
  /** One token per client. */
  tokens: string[]
  targets: string[]
  durationMs: number
}

const job = JSON.parse(await new Response(process.stdin as unknown as ReadableStream).text()) as Job
const perPool = Math.ceil(job.tokens.length / job.urls.length)
const pools = job.urls.map((url) => new Pool(url, { connections: perPool, pipelining: 1 }))

async function post(pool: Pool, token: string, path: string, body: unknown): Promise<{ status: number; body: any }> {
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

async function client(token: string, pool: Pool) {
  while (performance.now() < deadline && targets.length > 0) {
    const i = Math.floor(Math.random() * targets.length)
    const target = targets[i]!
    const t0 = performance.now()
    const r = await post(pool, token, "/v1/keypackages/reserve", { target })
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
    const s = await post(pool, token, "/v1/keypackages/spend", { ref: r.body.ref, reservationId: r.body.reservationId })
    if (s.status !== 200) {
      errors++
      continue
    }
    latencies.push(performance.now() - t0)
  }
}

await Promise.all(job.tokens.map((token, i) => client(token, pools[i % pools.length]!)))
const elapsedMs = performance.now() - started
await Promise.all(pools.map((p) => p.close()))
const doubleHanded = [...handedOut.values()].filter((n) => n > 1).length
process.stdout.write(JSON.stringify({ latencies, elapsedMs, doubleHanded, errors, exhausted, refs: handedOut.size }))
