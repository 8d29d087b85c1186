/**
 * keydir: reserve+spend pairs over HTTP against a server in its own process, with the load from a
 * third process. Enough users with full pools (64 keys each) that the keys outlast the run.
 * `--db postgres --instances N`: N servers on one PostgreSQL database, the clients spread over them
 * (results/keydir-pg.json).
 */
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { makeEncodedKeyPackages, newUser, uploadKeyPackages } from "../helpers/users.js"
import { quantile, report } from "./report.js"
import { runChild } from "../helpers/spawnServer.js"
import { startBenchServers } from "./_servers.js"

const users = Number(process.env.KEYDIR_USERS ?? 800)
const clients = 64
const durationMs = Number(process.env.KEYDIR_SECONDS ?? 10) * 1000

export default async function keydir(flags: string[]): Promise<void> {
  const servers = await startBenchServers(flags, "keydir")
  const server = { url: servers.urls[0]! }
  try {
    const t0 = performance.now()
    const all = []
    for (let i = 0; i < users; i += 50) {
      all.push(
        ...(await Promise.all(
          Array.from({ length: Math.min(50, users - i) }, (_, j) => newUser(server.url, `u${i + j}`)),
        )),
      )
    }
    let keys = 0
    for (const u of all) {
      const r = await uploadKeyPackages(server.url, u, await makeEncodedKeyPackages(u, 64))
      keys += r.body.results.filter((x: { status: string }) => x.status === "accepted").length
    }
    console.log(`setup: ${users} users, ${keys} keys in ${((performance.now() - t0) / 1000).toFixed(1)} s`)

    await servers.loadStarts()
    const load = await runChild<{
      latencies: number[]
      elapsedMs: number
      doubleHanded: number
      errors: number
      exhausted: number
    }>(join(dirname(fileURLToPath(import.meta.url)), "_keydirLoad.ts"), {
      urls: servers.urls,
      tokens: all.slice(0, clients).map((u) => u.token),
      targets: all.map((u) => u.name),
      durationMs,
    })
    const spentInDb = await servers.count("SELECT count(*) AS n FROM keypackages WHERE state = 'spent'")

    const pairs = load.latencies.length
    const result = {
      pairs_per_s: Math.round(pairs / (load.elapsedMs / 1000)),
      p50_ms: quantile(load.latencies, 0.5),
      p99_ms: quantile(load.latencies, 0.99),
      double_handed: load.doubleHanded,
      pairs,
      spent_in_db: spentInDb,
      errors: load.errors,
      elapsed_s: load.elapsedMs / 1000,
      users,
      clients,
      instances: servers.instances,
      durability: servers.durability,
    }
    report(servers.postgres ? "keydir-pg" : "keydir", [result], result)
    if (spentInDb !== pairs)
      console.log(`WARNING: ${pairs} pairs acknowledged but ${spentInDb} keys spent in the database`)
  } finally {
    await servers.stop()
  }
}
