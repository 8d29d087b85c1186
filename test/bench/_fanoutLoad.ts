/**
 * Clients of the fanout benchmark, run in their own process: one WebSocket per member, and one
 * member posting application messages over an undici Pool. With several server instances, member i streams from
 * instance i mod N and post j goes to instance j mod N. Reads its job as JSON on stdin; prints
 * per-message post times and per-delivery receive times as JSON on stdout.
 */
import { Pool } from "undici"
import WebSocket from "ws"
import { fromBase64Url } from "../../rpc-schema/common.js"
import { fakeMessage } from "../helpers/mls.js"

interface Job {
  urls: string[]
  groupId: string
  /** One token per member; the first one posts. */
  tokens: string[]
  epoch: number
  /** The seq the members are at before the run. */
  after: number
  messages: number
  bytes: number
  inFlight: number
}

const job = JSON.parse(await new Response(process.stdin as unknown as ReadableStream).text()) as Job
const now = () => performance.timeOrigin + performance.now()

/** Per member: seq → receive time. Entry frames are scanned, not parsed: the client must not be the bottleneck. */
const received = job.tokens.map(() => [] as [number, number][])
let caughtUp = 0
let deliveries = 0
const total = job.tokens.length * job.messages
let allDelivered: () => void = () => {}
const done = new Promise<void>((resolve) => (allDelivered = resolve))

const sockets = await Promise.all(
  job.tokens.map(
    (token, i) =>
      new Promise<WebSocket>((resolve, reject) => {
        const ws = new WebSocket(job.urls[i % job.urls.length]!.replace(/^http/, "ws") + "/v1/stream", {
          headers: { authorization: `Bearer ${token}` },
          perMessageDeflate: false,
        })
        ws.on("message", (data: Buffer) => {
          const text = data.toString()
          if (text.startsWith('{"type":"entry"')) {
            const at = text.indexOf('"seq":') + 6
            received[i]!.push([Number(text.slice(at, text.indexOf(",", at))), now()])
            if (++deliveries === total) allDelivered()
          } else if (text.startsWith('{"type":"caughtUp"')) caughtUp++
        })
        ws.once("open", () => {
          ws.send(
            JSON.stringify({ type: "hello", groups: [{ groupId: job.groupId, after: job.after }], inboxAfter: 0 }),
          )
          resolve(ws)
        })
        ws.once("error", reject)
      }),
  ),
)
while (caughtUp < sockets.length) await new Promise((resolve) => setTimeout(resolve, 10))

const pools = job.urls.map(
  (url) => new Pool(url, { connections: Math.ceil(job.inFlight / job.urls.length), pipelining: 1 }),
)
const groupBytes = fromBase64Url(job.groupId)
const sentAt: Record<number, number> = {}
let next = 0
let errors = 0
const started = now()
await Promise.all(
  Array.from({ length: job.inFlight }, async (_, worker) => {
    const pool = pools[worker % pools.length]!
    while (next < job.messages) {
      next++
      const message = fakeMessage(groupBytes, job.epoch, "application", job.bytes)
      const t0 = now()
      const res = await pool.request({
        method: "POST",
        path: `/v1/groups/${job.groupId}/messages`,
        headers: { authorization: `Bearer ${job.tokens[0]}`, "content-type": "application/json" },
        body: JSON.stringify({ message }),
      })
      const body = (await res.body.json()) as { seq: number }
      if (res.statusCode === 201) sentAt[body.seq] = t0
      else errors++
    }
  }),
)
const expected = Object.keys(sentAt).length * sockets.length
const timeout = setTimeout(() => allDelivered(), 30_000)
if (deliveries < expected) await done
clearTimeout(timeout)
const finished = Math.max(...received.map((r) => r.at(-1)?.[1] ?? 0))
for (const ws of sockets) ws.terminate()
await Promise.all(pools.map((p) => p.close()))
process.stdout.write(JSON.stringify({ sentAt, received, started, finished, errors }))
