import assert from "node:assert/strict"
import { describe, it } from "node:test"
import type { PoolStatusResult } from "../../rpc-schema/daemon/pool.js"
import { startDaemon, type TestDaemon } from "../helpers/daemon.js"
import { http } from "../helpers/http.js"
import { daemonUserSession, privateInitKeys, secretsInFile, serverPool } from "../helpers/pool.js"
import { startServer, type TestServer } from "../helpers/server.js"
import { newUser } from "../helpers/users.js"

const day = 24 * 3600_000

/** A registered daemon whose clock is the server's, with its first maintenance pass done. */
async function registered(t: any, s: TestServer, name: string, args: string[] = []) {
  const d = await startDaemon(t, { server: s.url, args })
  await d.client.call("debug.setClock", { now: s.clock.now() })
  await d.client.call("events.subscribe", { after: 0 })
  const connected = d.client.next("connection.changed", (p) => p.state === "connected")
  await d.client.call("identity.register", { username: name })
  const status = await d.client.call("pool.refresh")
  await connected
  return { d, status, user: await daemonUserSession(s.url, d.dbPath) }
}

/** Both sides agree: the server holds exactly the refs the daemon believes uploaded. */
async function assertAgreement(s: TestServer, d: TestDaemon, user: { name: string; token: string }) {
  const server = await serverPool(s.url, user)
  const local = await d.client.call("pool.list")
  const held = local.keys.filter((k) => !k.lastResort && (k.state === "available" || k.state === "reserved"))
  assert.deepEqual(
    [...server.refs.available, ...server.refs.reserved].sort(),
    held.map((k) => k.ref).sort(),
    "server refs = daemon's available + reserved",
  )
  assert.ok(
    held.every((k) => k.hasPrivateKey),
    "no key on the server whose private part is lost",
  )
  const st = await d.client.call("pool.status")
  assert.equal(st.digest, server.status.digest)
  assert.equal(st.lastResort?.ref, server.status.lastResort?.ref)
  return { server, local, status: st }
}

describe("KeyPackage pool", () => {
  it("fills a fresh profile to 32 available + 1 last resort and agrees with the server figure for figure", async (t) => {
    const s = await startServer(t)
    const { d, status, user } = await registered(t, s, "alice")
    const server = await serverPool(s.url, user)
    assert.equal(server.status.available, 32)
    assert.ok(server.status.lastResort, "one last-resort key on the server")
    for (const f of ["available", "reserved", "spent", "expired", "expiringSoon", "health", "digest"] as const) {
      assert.equal(status[f], server.status[f], `pool.status.${f}`)
    }
    assert.deepEqual(status.lastResort, server.status.lastResort)
    assert.equal(status.synced, true)
    assert.equal(status.lastPass?.ok, true)
    const keys = (await d.client.call("pool.list")).keys
    assert.equal(keys.length, 33)
    assert.equal(keys.filter((k) => k.lastResort).length, 1)
    assert.ok(keys.every((k) => k.state === "available" && k.hasPrivateKey))
    assert.equal((await d.client.call("pool.list", { state: "created" })).keys.length, 0)
    await assertAgreement(s, d, user)
  })

  it("learns of reservations over its stream and replenishes to 32 without exceeding 64", async (t) => {
    const s = await startServer(t, { reserveBurst: 100 })
    // The fixed policy: the adaptive one would raise the target after this burst (test/daemon/poolUsage.test.ts).
    const { d, user } = await registered(t, s, "alice", ["--pool-fixed"])
    const bob = await newUser(s.url, "bob")
    const seen: PoolStatusResult[] = []
    d.client.on("pool.changed", (p) => seen.push(p.status))
    const learned = d.client.next("pool.changed", (p) => p.reason === "reserved")
    const healed = d.client.next(
      "pool.changed",
      (p) => p.reason === "maintenance" && p.status.available === 32 && p.status.reserved === 25,
      15_000,
    )
    let last: any
    for (let i = 0; i < 25; i++) {
      last = await http(s.url, "POST", "/v1/keypackages/reserve", { token: bob.token, json: { target: "alice" } })
      assert.equal(last.status, 201)
    }
    assert.equal(last.body.remainingAvailable ?? 7, 7)
    await learned
    const done = await healed
    assert.equal(done.status.health, "good")
    assert.ok(
      seen.every((st) => st.available + st.reserved + st.created <= 64),
      "never above the cap",
    )
    const { server } = await assertAgreement(s, d, user)
    assert.equal(server.status.available, 32)
    assert.equal(server.status.reserved, 25)
    assert.ok(server.status.available + server.status.reserved <= 64)
    const reserved = (await d.client.call("pool.list", { state: "reserved" })).keys
    assert.equal(reserved.length, 25)
    assert.ok(reserved.every((k) => k.reservedBy === "bob"))
  })

  it("rotates keys close to expiry and erases their private parts after not_after plus 24 h", async (t) => {
    const s = await startServer(t)
    const { d } = await registered(t, s, "alice")
    const old = (await d.client.call("pool.list")).keys
    const secrets = privateInitKeys(
      d.dbPath,
      old.map((k) => k.ref),
    )
    assert.equal(secrets.size, 33)
    assert.equal(secretsInFile(d.dbPath, secrets.values()), 33, "the search finds live secrets")

    // Within 2 days of not_after: withdrawn from the server and replaced. The daemon's session token has expired
    // by then (24 h): the 401 is answered by a new login without anyone noticing.
    s.clock.advance(12 * day + 3600_000)
    await d.client.call("debug.setClock", { now: s.clock.now() })
    const rotated = await d.client.call("pool.refresh")
    assert.equal(rotated.lastError, null)
    assert.equal(rotated.available, 32)
    assert.equal(rotated.expiringSoon, 0)
    const server = await serverPool(s.url, await daemonUserSession(s.url, d.dbPath))
    const oldRefs = new Set(old.map((k) => k.ref))
    assert.equal(server.status.available, 32)
    assert.ok(
      [...server.refs.available].every((r) => !oldRefs.has(r)),
      "no old key left on the server",
    )
    assert.ok(server.status.lastResort && !oldRefs.has(server.status.lastResort.ref), "last resort replaced")
    const kept = (await d.client.call("pool.list", { state: "expired" })).keys
    assert.equal(kept.length, 33)
    assert.ok(
      kept.every((k) => k.hasPrivateKey),
      "private parts kept until not_after + 24 h",
    )

    // Past not_after + 24 h: gone from the database file, WAL included.
    s.clock.advance(3 * day)
    await d.client.call("debug.setClock", { now: s.clock.now() })
    const purged = await d.client.call("pool.refresh")
    assert.equal(purged.lastError, null)
    assert.equal(purged.expired, 0)
    assert.equal((await d.client.call("pool.list")).keys.filter((k) => oldRefs.has(k.ref)).length, 0)
    assert.equal(secretsInFile(d.dbPath, secrets.values()), 0, "no old private init key in the file or WAL")
    await assertAgreement(s, d, await daemonUserSession(s.url, d.dbPath))
  })
})
