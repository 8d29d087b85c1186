/**
 * Key-use transparency and the adaptive pool, end to end: a real server (in this process, ManualClock), real daemons,
 * requesters reserving over HTTP. pool.usage names who reserved, spent and abandoned keys; pool.suspicious fires for
 * a requester that lets reservations lapse and for strangers taking most claims; the target follows the largest
 * burst between maintenance passes.
 */
import assert from "node:assert/strict"
import { describe, it, type TestContext } from "node:test"
import { registered } from "../helpers/chat.js"
import type { TestDaemon } from "../helpers/daemon.js"
import { http } from "../helpers/http.js"
import { startServer, type TestServer } from "../helpers/server.js"
import { newUser, type TestUser } from "../helpers/users.js"

const reserve = async (s: TestServer, by: TestUser, target: string) => {
  const r = await http(s.url, "POST", "/v1/keypackages/reserve", { token: by.token, json: { target } })
  assert.equal(r.status, 201, JSON.stringify(r.body))
  return r.body as { ref: string; reservationId: string; lastResort: boolean }
}

/** Resolves once `d` has sent `n` pool.changed notifications for `reason` (it subscribed with `after: 0`). */
function poolEvents(d: TestDaemon, reason: string, n: number): Promise<void> {
  let seen = 0
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${seen} of ${n} pool.changed "${reason}"`)), 30_000)
    const off = d.client.on("pool.changed", (p) => {
      if (p.reason === reason && ++seen === n) {
        clearTimeout(timer)
        off()
        resolve()
      }
    })
  })
}

/** Reservations by `by` of `target`'s keys that lapse unused: the server's clock passes their TTL and GC runs. */
async function abandon(s: TestServer, d: TestDaemon, by: TestUser, target: string, n: number): Promise<void> {
  const released = poolEvents(d, "released", n)
  for (let i = 0; i < n; i++) await reserve(s, by, target)
  s.clock.advance(61_000)
  await s.app.directory.collectGarbage()
  await released
}

describe("pool.usage and pool.suspicious", () => {
  it("names a requester that reserves and abandons keys, beside an inviter whose reservation became a Welcome", async (t) => {
    const s = await startServer(t)
    const victim = await registered(t, s.url, "victim")
    const bob = await registered(t, s.url, "bob")
    const mallory = await newUser(s.url, "mallory")
    const lapses = victim.client.next("pool.suspicious", (p) => p.reason === "lapses", 30_000)
    await abandon(s, victim, mallory, "victim", 7)
    const alarm = await lapses
    assert.equal(alarm.username, "mallory")
    assert.equal(alarm.count, 6, "fires once the 6th lapse passes the threshold of 5")
    assert.equal(alarm.threshold, 5)

    // Bob's reservation is the 8th claim within the hour, and all 8 came from users sharing no group with victim.
    const strangers = victim.client.next("pool.suspicious", (p) => p.reason === "strangers", 30_000)
    const g = await bob.client.call("group.create", { name: "team" })
    const joined = victim.client.next("group.joined", (p) => p.groupId === g.groupId, 30_000)
    const spent = poolEvents(victim, "spent", 1)
    await bob.client.call("group.invite", { group: g.groupId, user: "victim" })
    await Promise.all([joined, spent])
    const crowd = await strangers
    assert.deepEqual([crowd.username, crowd.count, crowd.total], [null, 8, 8])

    const usage = await victim.client.call("pool.usage", {})
    const row = (name: string) => usage.requesters.find((r) => r.username === name)
    assert.deepEqual(
      { ...row("mallory"), lastAt: 0 },
      { username: "mallory", groupMate: false, reserved: 7, spent: 0, lapsed: 7, lastResort: 0, lastAt: 0 },
    )
    assert.deepEqual(
      { ...row("bob"), lastAt: 0 },
      { username: "bob", groupMate: true, reserved: 1, spent: 1, lapsed: 0, lastResort: 0, lastAt: 0 },
    )
    assert.deepEqual(usage.total, { reserved: 8, spent: 1, lapsed: 7, byStrangers: 7 })
    assert.equal(usage.requesters[0]!.username, "mallory", "most reservations first")
    // A window that starts after everything is empty.
    const later = await victim.client.call("pool.usage", { sinceMs: usage.until + 1 })
    assert.deepEqual(later.requesters, [])

    // The lapsed keys went back to the pool on both sides.
    const st = await victim.client.call("pool.refresh")
    assert.equal(st.reserved, 0)
    assert.equal(st.synced, true)
  })
})

describe("adaptive pool", () => {
  /** A profile whose passes run only when asked (pool.refresh), so a burst lands between two passes. */
  async function burstOf(t: TestContext, claims: number, args: string[]) {
    const s = await startServer(t)
    const d = await registered(t, s.url, "popular", { args: ["--pool-event-delay-ms", "3600000", ...args] })
    // Five requesters: one pair's burst (16) could not make the claims alone.
    const requesters = await Promise.all([1, 2, 3, 4, 5].map((i) => newUser(s.url, `r${i}`)))
    for (const r of requesters) await abandon(s, d, r, "popular", claims / 5)
    return d.client.call("pool.refresh")
  }

  it("sizes the target from the largest burst between passes, and fills the pool to it", async (t) => {
    const st = await burstOf(t, 30, [])
    assert.equal(st.demand.peakBurst, 30)
    assert.equal(st.demand.reason, "peak")
    assert.equal(st.demand.target, 45)
    assert.match(st.demand.why, /largest burst 30 between passes × 1.5 = 45/)
    assert.ok(st.demand.reservationsPerHour > 29 && st.demand.reservationsPerHour <= 30)
    assert.equal(st.available, 45)
    assert.equal(st.policy.adaptive, true)
    assert.equal(st.policy.target, 32)
  })

  it("stops at the cap, and keeps the configured target with --pool-fixed", async (t) => {
    const capped = await burstOf(t, 50, [])
    assert.deepEqual([capped.demand.reason, capped.demand.target, capped.available], ["cap", 64, 64])
    const fixed = await burstOf(t, 30, ["--pool-fixed"])
    assert.deepEqual([fixed.demand.reason, fixed.demand.target, fixed.available], ["fixed", 32, 32])
    assert.equal(fixed.demand.peakBurst, 30, "measured all the same")
  })
})
