import assert from "node:assert/strict"
import { describe, it } from "node:test"
import { count, sql } from "../helpers/db.js"
import { startServer } from "../helpers/server.js"
import { http } from "../helpers/http.js"
import {
  encodeKp,
  makeEncodedKeyPackage,
  makeEncodedKeyPackages,
  makeKeyPackage,
  newIdentity,
  newUser,
  testSuite,
  uploadKeyPackages,
  type TestUser,
} from "../helpers/users.js"
import { encodeKeyPackage, signKeyPackage } from "ts-mls/keyPackage.js"
import { toBase64Url } from "../../rpc-schema/common.js"
import { encodeMlsMessage } from "ts-mls"

const day = 24 * 3600_000

async function status(url: string, u: TestUser) {
  const r = await http(url, "GET", `/v1/users/${u.name}/keypackages/status`, { token: u.token })
  assert.equal(r.status, 200, JSON.stringify(r.body))
  return r.body
}

const reserve = (url: string, by: TestUser, target: string) =>
  http(url, "POST", "/v1/keypackages/reserve", { token: by.token, json: { target } })

const spend = (url: string, by: TestUser, ref: string, reservationId: string) =>
  http(url, "POST", "/v1/keypackages/spend", { token: by.token, json: { ref, reservationId } })

describe("key directory upload", () => {
  it("accepts 32 valid KeyPackages and reports 32 available with good health", async (t) => {
    const s = await startServer(t)
    const alice = await newUser(s.url, "alice")
    const r = await uploadKeyPackages(s.url, alice, await makeEncodedKeyPackages(alice, 32, { now: s.clock.now() }))
    assert.equal(r.status, 200)
    assert.equal(r.body.results.filter((x: { status: string }) => x.status === "accepted").length, 32)
    assert.equal(new Set(r.body.results.map((x: { ref: string }) => x.ref)).size, 32)
    const st = await status(s.url, alice)
    assert.equal(st.available, 32)
    assert.equal(st.reserved, 0)
    assert.equal(st.health, "good")
    assert.equal(st.lastUpload, s.clock.now())
  })

  it("stores a re-sent KeyPackage once and reports it as duplicate", async (t) => {
    const s = await startServer(t)
    const alice = await newUser(s.url, "alice")
    const [kp] = await makeEncodedKeyPackages(alice, 1, { now: s.clock.now() })
    const first = await uploadKeyPackages(s.url, alice, [kp!, kp!])
    assert.deepEqual(
      first.body.results.map((x: { status: string }) => x.status),
      ["accepted", "duplicate"],
    )
    const again = await uploadKeyPackages(s.url, alice, [kp!])
    assert.equal(again.body.results[0].status, "duplicate")
    assert.equal(again.body.results[0].ref, first.body.results[0].ref)
    assert.equal((await status(s.url, alice)).available, 1)
  })

  it("accepts an MLSMessage-wrapped KeyPackage and computes the same ref as for the bare one", async (t) => {
    const s = await startServer(t)
    const alice = await newUser(s.url, "alice")
    const kp = await makeKeyPackage(alice, { now: s.clock.now() })
    const wrapped = encodeMlsMessage({ version: "mls10", wireformat: "mls_key_package", keyPackage: kp })
    const r1 = await uploadKeyPackages(s.url, alice, [toBase64Url(wrapped)])
    assert.equal(r1.body.results[0].status, "accepted")
    const r2 = await uploadKeyPackages(s.url, alice, [toBase64Url(encodeKeyPackage(kp))])
    assert.equal(r2.body.results[0].status, "duplicate")
    assert.equal(r2.body.results[0].ref, r1.body.results[0].ref)
  })

  it("rejects each bad KeyPackage with its own reason and stores none of them", async (t) => {
    const s = await startServer(t)
    const now = s.clock.now()
    const alice = await newUser(s.url, "alice")
    const bob = await newUser(s.url, "bob")
    const good = await makeKeyPackage(alice, { now })
    await uploadKeyPackages(s.url, alice, [encodeKp(good)])

    const flipped = encodeKeyPackage(await makeKeyPackage(alice, { now }))
    flipped[flipped.length - 5]! ^= 0x01 // inside the trailing signature
    // Its init key's length (32, at offset 4) written in two bytes instead of one, which RFC 9420 forbids.
    const wide = encodeKeyPackage(await makeKeyPackage(alice, { now }))
    const nonMinimal = Uint8Array.from([...wide.subarray(0, 4), 0x40, ...wide.subarray(4)])
    // A different, correctly signed package around an init key seen before.
    const other = await makeKeyPackage(alice, { now })
    const reusedInit = await signKeyPackage(
      { ...other, initKey: good.initKey },
      alice.seed,
      (await testSuite()).signature,
    )

    const cases: Array<[string, string, string]> = [
      [
        "credential naming another user",
        await makeEncodedKeyPackage(alice, { now, identity: "bob" }),
        "credential_mismatch",
      ],
      [
        "signed by another key than the one bound by the first upload",
        await makeEncodedKeyPackage(alice, { now, signer: newIdentity() }),
        "credential_mismatch",
      ],
      ["signed by bob's key", await makeEncodedKeyPackage(alice, { now, signer: bob }), "credential_mismatch"],
      ["one flipped signature byte", toBase64Url(flipped), "bad_signature"],
      [
        "expired",
        await makeEncodedKeyPackage(alice, { now, notBefore: now - 10 * day, notAfter: now - day }),
        "expired",
      ],
      [
        "not_after beyond 90 days",
        await makeEncodedKeyPackage(alice, { now, notAfter: now + 91 * day }),
        "lifetime_too_long",
      ],
      ["reused HPKE init key", encodeKp(reusedInit), "init_key_reused"],
      ["garbage bytes", toBase64Url(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])), "malformed"],
      ["trailing bytes", encodeKp(good) + "AAAA", "malformed"],
      ["a length not in its fewest bytes", toBase64Url(nonMinimal), "malformed"],
    ]
    for (const [what, encoded, reason] of cases) {
      const r = await uploadKeyPackages(s.url, alice, [encoded])
      assert.equal(r.status, 200, what)
      assert.equal(r.body.results[0].status, "rejected", what)
      assert.equal(r.body.results[0].reason, reason, what)
      assert.match(r.body.results[0].message, /\w/, what)
    }
    assert.equal((await status(s.url, alice)).available, 1)
  })

  it("rejects the 65th key with cap_exceeded", async (t) => {
    const s = await startServer(t)
    const alice = await newUser(s.url, "alice")
    const kps = await makeEncodedKeyPackages(alice, 65, { now: s.clock.now() })
    const first = await uploadKeyPackages(s.url, alice, kps.slice(0, 64))
    assert.ok(first.body.results.every((x: { status: string }) => x.status === "accepted"))
    const last = await uploadKeyPackages(s.url, alice, kps.slice(64))
    assert.equal(last.body.results[0].status, "rejected")
    assert.equal(last.body.results[0].reason, "cap_exceeded")
    assert.equal((await status(s.url, alice)).available, 64)
  })
})

describe("key directory reserve", () => {
  async function fiftyRequesters(url: string) {
    return Promise.all(Array.from({ length: 50 }, (_, i) => newUser(url, `req${i}`)))
  }

  it("hands 32 keys to 32 of 50 concurrent requesters and answers the rest no_keypackage_available", async (t) => {
    const s = await startServer(t)
    const alice = await newUser(s.url, "alice")
    await uploadKeyPackages(s.url, alice, await makeEncodedKeyPackages(alice, 32, { now: s.clock.now() }))
    const requesters = await fiftyRequesters(s.url)
    const answers = await Promise.all(requesters.map((r) => reserve(s.url, r, "alice")))
    const ok = answers.filter((a) => a.status === 201)
    assert.equal(ok.length, 32)
    assert.equal(new Set(ok.map((a) => a.body.ref)).size, 32)
    assert.ok(ok.every((a) => a.body.lastResort === false))
    const refused = answers.filter((a) => a.status !== 201)
    assert.equal(refused.length, 18)
    for (const a of refused) {
      assert.equal(a.status, 404)
      assert.equal(a.body.error.code, "no_keypackage_available")
    }
    const st = await status(s.url, alice)
    assert.equal(st.available, 0)
    assert.equal(st.reserved, 32)
    assert.equal(st.health, "exhausted")
  })

  it("hands the last-resort key to everyone left over, and it stays in place", async (t) => {
    const s = await startServer(t)
    const alice = await newUser(s.url, "alice")
    await uploadKeyPackages(s.url, alice, await makeEncodedKeyPackages(alice, 32, { now: s.clock.now() }))
    const [lastResort] = await makeEncodedKeyPackages(alice, 1, { now: s.clock.now() })
    const put = await http(s.url, "PUT", "/v1/users/alice/keypackages/last-resort", {
      token: alice.token,
      json: { keyPackage: lastResort },
    })
    assert.equal(put.status, 200)
    assert.equal(put.body.status, "accepted")
    const requesters = await fiftyRequesters(s.url)
    const answers = await Promise.all(requesters.map((r) => reserve(s.url, r, "alice")))
    assert.ok(answers.every((a) => a.status === 201))
    const ordinary = answers.filter((a) => !a.body.lastResort)
    const fallback = answers.filter((a) => a.body.lastResort)
    assert.equal(ordinary.length, 32)
    assert.equal(new Set(ordinary.map((a) => a.body.ref)).size, 32)
    assert.equal(fallback.length, 18)
    assert.ok(fallback.every((a) => a.body.ref === put.body.ref))
    // Spending the last-resort key does not consume it.
    const holder = requesters[answers.indexOf(fallback[0]!)]!
    const sp = await spend(s.url, holder, fallback[0]!.body.ref, fallback[0]!.body.reservationId)
    assert.equal(sp.status, 200)
    assert.equal(sp.body.lastResort, true)
    const st = await status(s.url, alice)
    assert.equal(st.lastResort.ref, put.body.ref)
    const again = await reserve(s.url, await newUser(s.url, "late"), "alice")
    assert.equal(again.status, 201)
    assert.equal(again.body.ref, put.body.ref)
  })

  it("replaces the last-resort key on a second upload", async (t) => {
    const s = await startServer(t)
    const alice = await newUser(s.url, "alice")
    const [a, b] = await makeEncodedKeyPackages(alice, 2, { now: s.clock.now() })
    const put = (kp: string) =>
      http(s.url, "PUT", "/v1/users/alice/keypackages/last-resort", { token: alice.token, json: { keyPackage: kp } })
    const first = await put(a!)
    const second = await put(b!)
    assert.notEqual(first.body.ref, second.body.ref)
    assert.equal((await status(s.url, alice)).lastResort.ref, second.body.ref)
    const bob = await newUser(s.url, "bob")
    assert.equal((await reserve(s.url, bob, "alice")).body.ref, second.body.ref)
  })

  it("answers 429 rate_limited with a retry-after once a requester exceeds its burst for one target", async (t) => {
    const s = await startServer(t, { reserveBurst: 3, reservePerMinute: 6 })
    const alice = await newUser(s.url, "alice")
    const bob = await newUser(s.url, "bob")
    const carol = await newUser(s.url, "carol")
    await uploadKeyPackages(s.url, alice, await makeEncodedKeyPackages(alice, 8, { now: s.clock.now() }))
    for (let i = 0; i < 3; i++) assert.equal((await reserve(s.url, bob, "alice")).status, 201)
    const limited = await reserve(s.url, bob, "alice")
    assert.equal(limited.status, 429)
    assert.equal(limited.body.error.code, "rate_limited")
    assert.equal(limited.headers["retry-after"], "10")
    assert.equal(limited.body.error.details.retryAfterS, 10)
    assert.equal((await reserve(s.url, carol, "alice")).status, 201, "another requester has its own bucket")
    s.clock.advance(10_000)
    assert.equal((await reserve(s.url, bob, "alice")).status, 201)
    assert.equal((await status(s.url, alice)).reserved, 5)
  })
})

describe("key directory spend", () => {
  async function reserved(t: Parameters<typeof startServer>[0]) {
    const s = await startServer(t)
    const alice = await newUser(s.url, "alice")
    const bob = await newUser(s.url, "bob")
    const carol = await newUser(s.url, "carol")
    await uploadKeyPackages(s.url, alice, await makeEncodedKeyPackages(alice, 2, { now: s.clock.now() }))
    const r = await reserve(s.url, bob, "alice")
    assert.equal(r.status, 201)
    return { s, alice, bob, carol, ref: r.body.ref as string, rid: r.body.reservationId as string }
  }

  it("lets the holder spend once, then answers already_spent", async (t) => {
    const { s, alice, bob, ref, rid } = await reserved(t)
    const first = await spend(s.url, bob, ref, rid)
    assert.equal(first.status, 200)
    assert.equal(first.body.ref, ref)
    const second = await spend(s.url, bob, ref, rid)
    assert.equal(second.status, 409)
    assert.equal(second.body.error.code, "already_spent")
    const st = await status(s.url, alice)
    assert.equal(st.spent, 1)
    assert.equal(st.reserved, 0)
    assert.equal(st.available, 1)
  })

  it("refuses another user (403), a wrong reservation id, and an unknown ref (404)", async (t) => {
    const { s, alice, bob, carol, ref, rid } = await reserved(t)
    const byCarol = await spend(s.url, carol, ref, rid)
    assert.equal(byCarol.status, 403)
    assert.equal(byCarol.body.error.code, "forbidden")
    const wrongId = await spend(s.url, bob, ref, "AAAAAAAAAAAAAAAAAAAAAA")
    assert.equal(wrongId.status, 409)
    assert.equal(wrongId.body.error.code, "reservation_invalid")
    const carolsOwn = await reserve(s.url, carol, "alice")
    const crossed = await spend(s.url, bob, ref, carolsOwn.body.reservationId)
    assert.equal(crossed.body.error.code, "reservation_invalid")
    const unknown = await spend(s.url, bob, "A".repeat(43), rid)
    assert.equal(unknown.status, 404)
    assert.equal(unknown.body.error.code, "keypackage_not_found")
    const st = await status(s.url, alice)
    assert.equal(st.spent, 0)
    assert.equal(st.reserved, 2)
  })

  it("returns a key to the pool after the TTL; the stale reservation can no longer spend it", async (t) => {
    const { s, alice, bob, carol, ref, rid } = await reserved(t)
    await reserve(s.url, carol, "alice") // takes the second key
    s.clock.advance(60_001)
    assert.equal((await status(s.url, alice)).available, 2)
    const again = await reserve(s.url, carol, "alice")
    assert.equal(again.status, 201)
    assert.equal(again.body.ref, ref, "the oldest key is handed out first")
    const stale = await spend(s.url, bob, ref, rid)
    assert.equal(stale.status, 410)
    assert.equal(stale.body.error.code, "reservation_expired")
    assert.equal((await spend(s.url, carol, ref, again.body.reservationId)).status, 200)
  })

  it("tells the owner of each reservation, release and spend of its key, in order and field by field", async (t) => {
    const { s, alice, bob, carol, ref } = await reserved(t)
    const reservedAt = s.clock.now()
    s.clock.advance(60_001)
    const again = await reserve(s.url, carol, "alice") // releases bob's lapsed reservation, then takes the key again
    assert.equal(again.body.ref, ref)
    assert.equal((await spend(s.url, carol, ref, again.body.reservationId)).status, 200)
    const inbox = await http(s.url, "GET", "/v1/inbox", { token: alice.token })
    const by = (u: TestUser & { clientId: string }) => ({ by: u.name, byClientId: u.clientId })
    assert.deepEqual(
      inbox.body.items.map((i: { item: unknown }) => i.item),
      [
        { kind: "keyReserved", ref, ...by(bob), lastResort: false, remainingAvailable: 1 },
        { kind: "poolLow", available: 1 },
        { kind: "keyReleased", ref, ...by(bob), lastResort: false, reservedAt },
        { kind: "keyReserved", ref, ...by(carol), lastResort: false, remainingAvailable: 1 },
        { kind: "poolLow", available: 1 },
        { kind: "keySpent", ref, ...by(carol), lastResort: false },
      ],
    )
  })

  it("never hands out an expired key and garbage-collects it", async (t) => {
    const s = await startServer(t, { sessionTtlMs: 30 * day })
    const alice = await newUser(s.url, "alice")
    const bob = await newUser(s.url, "bob")
    const now = s.clock.now()
    await uploadKeyPackages(s.url, alice, await makeEncodedKeyPackages(alice, 3, { now, notAfter: now + day }))
    await uploadKeyPackages(s.url, alice, await makeEncodedKeyPackages(alice, 1, { now, notAfter: now + 3 * day }))
    assert.equal((await status(s.url, alice)).expiringSoon, 3)
    s.clock.advance(day + 1000)
    const st = await status(s.url, alice)
    assert.equal(st.expired, 3)
    assert.equal(st.available, 1)
    const r1 = await reserve(s.url, bob, "alice")
    assert.equal(r1.status, 201)
    assert.equal((await reserve(s.url, bob, "alice")).status, 404)
    const gc = await s.app.directory.collectGarbage()
    assert.equal(gc.expiredKeys, 3)
    assert.equal((await status(s.url, alice)).expired, 0)
    const held = await count(
      s.app.store,
      "SELECT count(*) AS n FROM keypackages k JOIN devices d ON d.id = k.owner JOIN accounts a ON a.user_id = d.user_id WHERE a.handle = 'alice'",
    )
    assert.equal(held, 1)
    const audit = await sql(s.app.store, "SELECT action, count(*) AS n FROM audit GROUP BY action ORDER BY action")
    assert.deepEqual(audit, [
      { action: "expire", n: 3 },
      { action: "reserve", n: 1 },
    ])
  })

  it("lets the owner withdraw an available key but not a reserved one", async (t) => {
    const { s, alice, bob, ref } = await reserved(t)
    const held = await http(s.url, "GET", "/v1/users/alice/keypackages/refs", { token: alice.token })
    assert.deepEqual(held.body.reserved, [ref])
    const other = held.body.available[0] as string
    const reservedOne = await http(s.url, "DELETE", `/v1/users/alice/keypackages/${ref}`, { token: alice.token })
    assert.equal(reservedOne.body.error.code, "keypackage_reserved")
    const foreign = await http(s.url, "DELETE", `/v1/users/alice/keypackages/${other}`, { token: bob.token })
    assert.equal(foreign.status, 403)
    const ok = await http(s.url, "DELETE", `/v1/users/alice/keypackages/${other}`, { token: alice.token })
    assert.equal(ok.status, 200)
    assert.equal((await status(s.url, alice)).available, 0)
  })
})

describe("key directory durability", () => {
  it("keeps users, sessions, keys, reservations and spends across a restart on the same file", async (t) => {
    const s = await startServer(t)
    const alice = await newUser(s.url, "alice")
    const bob = await newUser(s.url, "bob")
    await uploadKeyPackages(s.url, alice, await makeEncodedKeyPackages(alice, 4, { now: s.clock.now() }))
    const r1 = await reserve(s.url, bob, "alice")
    await spend(s.url, bob, r1.body.ref, r1.body.reservationId)
    const r2 = await reserve(s.url, bob, "alice")
    const before = await status(s.url, alice)
    await s.restart()
    assert.deepEqual(await status(s.url, alice), before)
    assert.equal((await spend(s.url, bob, r1.body.ref, r1.body.reservationId)).body.error.code, "already_spent")
    assert.equal((await spend(s.url, bob, r2.body.ref, r2.body.reservationId)).status, 200)
    const dup = await uploadKeyPackages(s.url, alice, await makeEncodedKeyPackages(alice, 1, { now: s.clock.now() }))
    assert.equal(dup.body.results[0].status, "accepted")
  })
})
