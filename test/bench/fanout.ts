/**
 * fanout: one group of 50 members, each on its own WebSocket; one member posts 5,000 application
 * messages of 200 bytes. Measures deliveries per second and post-to-delivery latency, and counts
 * lost and duplicated deliveries. Server and clients run in separate processes.
 * `--db postgres --instances N`: N servers on one PostgreSQL database; member i streams from instance i mod N and the
 * posts are spread over all of them (results/fanout-pg.json).
 */
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { createGroup, postCommit, reserve } from "../helpers/groups.js"
import { fakeWelcome } from "../helpers/mls.js"
import { runChild } from "../helpers/spawnServer.js"
import { makeEncodedKeyPackages, newUser, uploadKeyPackages } from "../helpers/users.js"
import { quantile, report } from "./report.js"
import { startBenchServers } from "./_servers.js"

const members = Number(process.env.FANOUT_MEMBERS ?? 50)
const messages = Number(process.env.FANOUT_MESSAGES ?? 5000)
const bytes = 200
const inFlight = 32

export default async function fanout(flags: string[]): Promise<void> {
  const servers = await startBenchServers(flags, "fanout")
  const server = { url: servers.urls[0]! }
  try {
    const users = await Promise.all(Array.from({ length: members }, (_, i) => newUser(server.url, `m${i}`)))
    const [owner, ...others] = users
    await Promise.all(others.map(async (u) => uploadKeyPackages(server.url, u, await makeEncodedKeyPackages(u, 1))))
    const g = await createGroup(server.url, owner!)
    const keyPackages = await Promise.all(others.map((u) => reserve(server.url, owner!, u.name)))
    const add = await postCommit(server.url, owner!, g, { keyPackages, welcome: fakeWelcome() })
    if (add.status !== 201) throw new Error(`adding the members failed: ${JSON.stringify(add.body)}`)

    await servers.loadStarts()
    const load = await runChild<{
      sentAt: Record<string, number>
      received: [number, number][][]
      started: number
      finished: number
      errors: number
    }>(join(dirname(fileURLToPath(import.meta.url)), "_fanoutLoad.ts"), {
      urls: servers.urls,
      groupId: g.id,
      tokens: users.map((u) => u.token),
      epoch: g.epoch,
      after: add.body.seq,
      messages,
      bytes,
      inFlight,
    })

    const posted = Object.keys(load.sentAt).map(Number)
    const latencies: number[] = []
    let lost = 0
    let duplicated = 0
    for (const deliveries of load.received) {
      const seen = new Set<number>()
      for (const [seq, at] of deliveries) {
        if (seen.has(seq)) duplicated++
        seen.add(seq)
        const sent = load.sentAt[seq]
        if (sent !== undefined) latencies.push(at - sent)
      }
      lost += posted.filter((seq) => !seen.has(seq)).length
    }
    const delivered = load.received.reduce((n, r) => n + r.length, 0)
    const elapsedS = (load.finished - load.started) / 1000
    const result = {
      deliveries_per_s: Math.round(delivered / elapsedS),
      p50_ms: Number(quantile(latencies, 0.5).toFixed(2)),
      p99_ms: Number(quantile(latencies, 0.99).toFixed(2)),
      lost,
      duplicated,
      posts_per_s: Math.round(posted.length / elapsedS),
      deliveries: delivered,
      members,
      messages: posted.length,
      post_errors: load.errors,
      message_bytes: bytes,
      elapsed_s: Number(elapsedS.toFixed(2)),
      instances: servers.instances,
      durability: servers.durability,
    }
    report(servers.postgres ? "fanout-pg" : "fanout", [result], result)
  } finally {
    await servers.stop()
  }
}
