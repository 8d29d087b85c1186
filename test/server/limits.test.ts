/**
 * The pool under pressure, against a real server: drain resistance (the per-target budget and the strangers'
 * share of it), the per-address limits on registration, challenges and reservations, the cap on outstanding
 * challenges, the spend oracle, and the owner's keyReleased item for a reservation that lapsed unused.
 */
import assert from "node:assert/strict"
import { describe, it } from "node:test"
import { defaultConfig, type ServerConfig } from "../../server/config.js"
import { createGroup, postCommit, readInbox, reserve as reserveKey } from "../helpers/groups.js"
import { http, type HttpResult } from "../helpers/http.js"
import { count } from "../helpers/db.js"
import { fakeWelcome } from "../helpers/mls.js"
import { startServer, type TestServer } from "../helpers/server.js"
import { runServer } from "../helpers/spawnServer.js"
import {
  makeEncodedKeyPackages,
  newIdentity,
  newUser,
  register,
  uploadKeyPackages,
  type TestUser,
} from "../helpers/users.js"

const reserve = (s: TestServer, by: TestUser, target: string) =>
  http(s.url, "POST", "/v1/keypackages/reserve", { token: by.token, json: { target } })

const challenge = (s: TestServer, username: string) =>
  http(s.url, "POST", "/v1/sessions/challenge", { json: { username } })

const rows = (s: TestServer, query: string) => count(s.app.store, query)

/** A refusal of a limit: 429 rate_limited with a positive retryAfterS in the body and the Retry-After header. */
function assertLimited(r: HttpResult, what: RegExp): void {
  assert.equal(r.status, 429, JSON.stringify(r.body))
  assert.equal(r.body.error.code, "rate_limited")
  assert.match(r.body.error.message, what)
  const retryAfterS = r.body.error.details.retryAfterS
  assert.ok(Number.isInteger(retryAfterS) && retryAfterS >= 1, `retryAfterS ${retryAfterS}`)
  assert.equal(r.headers["retry-after"], String(retryAfterS))
}

/** The shipped defaults of every budget (the test helper's roomy ones undone). */
const shipped: Partial<ServerConfig> = {
  reserveTargetBurst: defaultConfig.reserveTargetBurst,
  reserveStrangerBurst: defaultConfig.reserveStrangerBurst,
  reserveIpBurst: defaultConfig.reserveIpBurst,
  registerIpBurst: defaultConfig.registerIpBurst,
  challengeIpBurst: defaultConfig.challengeIpBurst,
  maxOutstandingChallenges: defaultConfig.maxOutstandingChallenges,
}

async function withKeys(s: TestServer, name: string, n: number): Promise<TestUser> {
  const u = await newUser(s.url, name)
  const r = await uploadKeyPackages(s.url, u, await makeEncodedKeyPackages(u, n, { now: s.clock.now() }))
  assert.equal(r.status, 200)
  return u
}

/** `mate` adds `target` to a group of its own, so the server's roster puts both in one group. */
async function shareGroup(s: TestServer, mate: TestUser, target: string): Promise<void> {
  const g = await createGroup(s.url, mate)
  const kp = await reserveKey(s.url, mate, target)
  const c = await postCommit(s.url, mate, g, { keyPackages: [kp], welcome: fakeWelcome() })
  assert.equal(c.status, 201, JSON.stringify(c.body))
}

async function available(s: TestServer, u: TestUser): Promise<number> {
  const r = await http(s.url, "GET", `/v1/users/${u.name}/keypackages/status`, { token: u.token })
  return r.body.available
}

describe("drain resistance", () => {
  it("keeps at least half of a pool against 4 draining accounts, and a group-mate still gets a key", async (t) => {
    // Registration is limited per address too: the attacker's 4 accounts fit the default burst.
    const s = await startServer(t, { ...shipped, registerIpBurst: 10 })
    const victim = await withKeys(s, "victim", 64)
    const mate = await newUser(s.url, "mate")
    await shareGroup(s, mate, "victim") // one key, spent in the Commit that added the victim
    const strangers = await Promise.all([1, 2, 3, 4].map((i) => newUser(s.url, `drain${i}`)))
    let taken = 0
    let refused = 0
    // Ten minutes of the attack: each account reserves as fast as it can, again every 30 s; reservations lapse.
    for (let round = 0; round < 20; round++) {
      for (const a of strangers) {
        for (;;) {
          const r = await reserve(s, a, "victim")
          if (r.status !== 201) {
            assertLimited(r, /victim's keys/)
            refused++
            break
          }
          taken++
        }
      }
      assert.ok((await available(s, victim)) >= 32, `round ${round}: ${await available(s, victim)} left`)
      const invite = await reserve(s, mate, "victim")
      assert.equal(invite.status, 201, "the group-mate is served while strangers are throttled")
      assert.equal(invite.body.lastResort, false)
      s.clock.advance(30_000)
      await s.app.directory.collectGarbage()
    }
    assert.ok(taken > 0 && refused >= 80, `taken ${taken}, refused ${refused}`)
  })

  it("limits reservations of one target by everyone together", async (t) => {
    const s = await startServer(t, { reserveTargetBurst: 3, reserveTargetPerMinute: 6 })
    await withKeys(s, "alice", 8)
    const requesters = await Promise.all([1, 2, 3, 4].map((i) => newUser(s.url, `r${i}`)))
    for (const r of requesters.slice(0, 3)) assert.equal((await reserve(s, r, "alice")).status, 201)
    const limited = await reserve(s, requesters[3]!, "alice")
    assertLimited(limited, /too many reservations of alice's keys;/)
    assert.equal(limited.body.error.details.retryAfterS, 10)
    assert.equal(await rows(s, "SELECT count(*) AS n FROM reservations"), 3, "a refusal reserves nothing")
    s.clock.advance(10_000)
    assert.equal((await reserve(s, requesters[3]!, "alice")).status, 201)
  })

  it("gives strangers only their share of a target's budget; group-mates keep the rest", async (t) => {
    const s = await startServer(t, { reserveStrangerBurst: 2, reserveStrangerPerMinute: 1, reserveTargetBurst: 6 })
    await withKeys(s, "alice", 16)
    const mate = await newUser(s.url, "mate")
    await shareGroup(s, mate, "alice") // the mate was a stranger then: one of the 2
    const strangers = await Promise.all([1, 2].map((i) => newUser(s.url, `s${i}`)))
    assert.equal((await reserve(s, strangers[0]!, "alice")).status, 201)
    assertLimited(await reserve(s, strangers[1]!, "alice"), /by non-group-mates/)
    for (let i = 0; i < 4; i++) assert.equal((await reserve(s, mate, "alice")).status, 201)
    assertLimited(await reserve(s, mate, "alice"), /too many reservations of alice's keys;/)
  })

  it("limits reservations per client address, whoever the account", async (t) => {
    const s = await startServer(t, { reserveIpBurst: 3, reserveIpPerMinute: 1 })
    await withKeys(s, "alice", 4)
    await withKeys(s, "bob", 4)
    const a = await newUser(s.url, "a")
    const b = await newUser(s.url, "b")
    assert.equal((await reserve(s, a, "alice")).status, 201)
    assert.equal((await reserve(s, b, "alice")).status, 201)
    assert.equal((await reserve(s, b, "bob")).status, 201)
    const limited = await reserve(s, a, "bob")
    assertLimited(limited, /from this address/)
    assert.equal(limited.body.error.details.retryAfterS, 60)
  })

  it("keeps the per-pair limit", async (t) => {
    const s = await startServer(t, { reserveBurst: 2, reservePerMinute: 1 })
    await withKeys(s, "alice", 4)
    const bob = await newUser(s.url, "bob")
    for (let i = 0; i < 2; i++) assert.equal((await reserve(s, bob, "alice")).status, 201)
    assertLimited(await reserve(s, bob, "alice"), /by you/)
  })
})

describe("unauthenticated routes", () => {
  it("limits registrations per client address and stores nothing refused", async (t) => {
    const s = await startServer(t, { registerIpBurst: 3, registerIpPerMinute: 1 })
    for (let i = 0; i < 3; i++) assert.equal((await register(s.url, `u${i}`)).status, 201)
    const limited = await register(s.url, "u3", newIdentity())
    assertLimited(limited, /registrations from this address/)
    assert.equal(await rows(s, "SELECT count(*) AS n FROM accounts"), 3)
    s.clock.advance(60_000)
    assert.equal((await register(s.url, "u3")).status, 201)
  })

  it("refuses a challenge flood: per user at most the outstanding cap, and the table stays bounded", async (t) => {
    const s = await startServer(t, { maxOutstandingChallenges: 8, challengeTtlMs: 60_000 })
    await newUser(s.url, "alice") // its login answered its one challenge
    const answers = await Promise.all(Array.from({ length: 200 }, () => challenge(s, "alice")))
    assert.equal(answers.filter((a) => a.status === 201).length, 8)
    const refused = answers.filter((a) => a.status !== 201)
    assert.equal(refused.length, 192)
    for (const r of refused) assertLimited(r, /alice has 8 unanswered challenges/)
    assert.equal(await rows(s, "SELECT count(*) AS n FROM challenges"), 8)
    // Expired ones stop counting at once (GC deletes them later).
    s.clock.advance(60_000)
    assert.equal((await challenge(s, "alice")).status, 201)
  })

  it("limits challenges per client address across user names", async (t) => {
    const s = await startServer(t, { challengeIpBurst: 5, challengeIpPerMinute: 5 })
    // newUser logs in: 3 challenges.
    for (const n of ["a", "b", "c"]) await newUser(s.url, n)
    assert.equal((await challenge(s, "a")).status, 201)
    assert.equal((await challenge(s, "b")).status, 201)
    const limited = await challenge(s, "c")
    assertLimited(limited, /challenges from this address/)
    assert.equal(limited.body.error.details.retryAfterS, 12)
    assert.equal(await rows(s, "SELECT count(*) AS n FROM challenges"), 2)
    // Unknown names count too: the limit runs before the lookup.
    assertLimited(await challenge(s, "nobody"), /from this address/)
  })
})

describe("spend oracle", () => {
  it("tells only the reservation holder that a key was spent", async (t) => {
    const s = await startServer(t)
    await withKeys(s, "alice", 2)
    const bob = await newUser(s.url, "bob")
    const carol = await newUser(s.url, "carol")
    const r = await reserve(s, bob, "alice")
    const spend = (by: TestUser, reservationId: string) =>
      http(s.url, "POST", "/v1/keypackages/spend", { token: by.token, json: { ref: r.body.ref, reservationId } })
    assert.equal((await spend(bob, r.body.reservationId)).status, 200)
    const carols = await reserve(s, carol, "alice")
    const guess = await spend(carol, carols.body.reservationId)
    assert.equal(guess.body.error.code, "reservation_invalid")
    const stolen = await spend(carol, r.body.reservationId)
    assert.equal(stolen.body.error.code, "forbidden")
    assert.equal((await spend(bob, r.body.reservationId)).body.error.code, "already_spent")
  })
})

describe("lapsed reservations", () => {
  it("puts a keyReleased item in the owner's inbox once, found by GC or by the next reservation", async (t) => {
    const s = await startServer(t)
    const alice = await withKeys(s, "alice", 3)
    const bob = await newUser(s.url, "bob")
    const carol = await newUser(s.url, "carol")
    const first = await reserve(s, bob, "alice")
    const second = await reserve(s, carol, "alice")
    s.clock.advance(defaultConfig.reservationTtlMs)
    const gc = await s.app.directory.collectGarbage()
    assert.equal(gc.lapsedReservations.length, 2)
    assert.equal((await s.app.directory.collectGarbage()).lapsedReservations.length, 0, "reported once")
    const third = await reserve(s, bob, "alice")
    s.clock.advance(defaultConfig.reservationTtlMs)
    await reserve(s, carol, "alice") // releases the third before taking a key
    const items = (await readInbox(s.url, alice)).body.items.map((i: { item: unknown }) => i.item)
    const released = items.filter((i: { kind: string }) => i.kind === "keyReleased")
    const seen = released.map((i: { ref: string; by: string; lastResort: boolean }) => [i.ref, i.by, i.lastResort])
    const expected = [
      [first.body.ref, "bob", false],
      [second.body.ref, "carol", false],
      [third.body.ref, "bob", false],
    ]
    assert.deepEqual([...seen].sort(), expected.sort())
    assert.equal(await available(s, alice), 2)
  })
})

describe("limit flags", () => {
  it("lists every limit in the usage text and refuses a bad value with exit code 2", async () => {
    const { code, stderr } = await runServer(["--reserve-stranger-burst", "0"])
    assert.equal(code, 2)
    assert.match(stderr, /--reserve-stranger-burst must be a positive number/)
    for (const flag of ["reserve-target", "reserve-stranger", "reserve-ip", "register-ip", "challenge-ip"]) {
      assert.match(stderr, new RegExp(`--${flag}-burst N`))
      assert.match(stderr, new RegExp(`--${flag}-rate N`))
    }
    assert.match(stderr, /--max-challenges N .*\(default 8\)/)
  })
})
