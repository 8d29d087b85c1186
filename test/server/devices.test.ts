/**
 * Accounts and devices on a real server: registration, link codes, the direct add, client-id credentials and MLS key
 * binding, the directory, reservation per device, delivery per device, removal, and bad inputs with stable codes.
 */
import assert from "node:assert/strict"
import { describe, it } from "node:test"
import { toBase64Url } from "../../rpc-schema/common.js"
import { loginMessage } from "../../rpc-schema/server/http/auth.js"
import { linkMessage } from "../../rpc-schema/server/http/devices.js"
import { closeCodes, closeReasons } from "../../rpc-schema/server/ws.js"
import { count, rowCounts } from "../helpers/db.js"
import { createGroup, postCommit, postMessage, readInbox, readLog } from "../helpers/groups.js"
import { http } from "../helpers/http.js"
import { fakeWelcome } from "../helpers/mls.js"
import { startServer } from "../helpers/server.js"
import { StreamClient } from "../helpers/stream.js"
import {
  addDevice,
  linkDevice,
  login,
  makeEncodedKeyPackage,
  makeEncodedKeyPackages,
  newIdentity,
  newUser,
  signText,
  uploadKeyPackages,
  type TestDevice,
  type TestUser,
} from "../helpers/users.js"

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
/** 16 hex digits, the first 8-f: the top bit is set so no client id needs a leading zero. */
const deviceIdPattern = /^[89a-f][0-9a-f]{15}$/

const linkCode = (s: { url: string }, by: TestUser) =>
  http(s.url, "POST", "/v1/devices/link-codes", { token: by.token })

function redeem(s: { url: string }, code: string, id = newIdentity(), proofCode = code) {
  const loginKey = toBase64Url(id.publicKey)
  return http(s.url, "POST", "/v1/devices/link", {
    json: { code, loginKey, proof: signText(id, linkMessage(proofCode, loginKey)) },
  })
}

const lookup = (s: { url: string }, by: TestUser, who: string) =>
  http(s.url, "GET", `/v1/users/${who}`, { token: by.token })

async function withKeys(s: { url: string; clock: { now(): number } }, d: TestDevice, n: number) {
  const r = await uploadKeyPackages(s.url, d, await makeEncodedKeyPackages(d, n, { now: s.clock.now() }))
  assert.ok(
    r.body.results.every((x: { status: string }) => x.status === "accepted"),
    JSON.stringify(r.body),
  )
}

describe("accounts and devices", () => {
  it("makes device ids of 16 hex digits whose first is never 0 (clients render them without leading zeros)", async (t) => {
    const s = await startServer(t)
    const users = await Promise.all(Array.from({ length: 24 }, (_, i) => newUser(s.url, `u${i}`)))
    for (const u of users) assert.match(u.deviceId, deviceIdPattern)
  })

  it("registers an account with its first device: user id, device id and client id under --domain", async (t) => {
    const s = await startServer(t, { domain: "chat.example.org" })
    const alice = await newUser(s.url, "alice")
    assert.match(alice.userId, uuid)
    assert.match(alice.deviceId, deviceIdPattern)
    assert.equal(alice.clientId, `${alice.userId}:${alice.deviceId}@chat.example.org`)
    const me = await http(s.url, "GET", "/v1/users/alice", { token: alice.token })
    assert.deepEqual(
      me.body.devices.map((d: { deviceId: string; clientId: string }) => [d.deviceId, d.clientId]),
      [[alice.deviceId, alice.clientId]],
    )
  })

  it("links a device with a one-time code: single use, short-lived, a bad proof leaves it usable", async (t) => {
    const s = await startServer(t)
    const alice = await newUser(s.url, "alice")
    const bob = await newUser(s.url, "bob")
    const code = (await linkCode(s, alice)).body.code as string
    assert.match(code, /^[0-9A-Z]{4}(-[0-9A-Z]{4}){3}$/)

    const before = await rowCounts(s.app.store)
    const forged = await redeem(s, code, newIdentity(), "AAAA-AAAA-AAAA-AAAA")
    assert.equal(forged.status, 400)
    assert.equal(forged.body.error.code, "bad_signature")
    assert.deepEqual(await rowCounts(s.app.store), before, "a refused link changes nothing")

    const id = newIdentity()
    const linked = await redeem(s, code, id)
    assert.equal(linked.status, 201)
    assert.equal(linked.body.userId, alice.userId, "the code links to the account that made it")
    assert.equal(linked.body.handle, "alice")
    assert.notEqual(linked.body.deviceId, alice.deviceId)
    const again = await redeem(s, code)
    assert.equal(again.status, 401)
    assert.equal(again.body.error.code, "invalid_link_code")

    // The account's other devices are told, to add the new one to their groups.
    const told = (await readInbox(s.url, alice)).body.items.map((i: { item: unknown }) => i.item)
    assert.deepEqual(told, [
      {
        kind: "deviceAdded",
        deviceId: linked.body.deviceId,
        clientId: linked.body.clientId,
        byClientId: alice.clientId,
      },
    ])
    // The new device logs in with its own key only, and acts as itself.
    const token = await login(s.url, "alice", id, linked.body.deviceId)
    const who = await http(s.url, "GET", "/v1/users/alice", { token })
    assert.equal(who.body.devices.length, 2)
    await assert.rejects(login(s.url, "alice", alice, linked.body.deviceId), /bad_signature/)
    // bob's account is untouched.
    assert.equal((await lookup(s, bob, "bob")).body.devices.length, 1)

    const late = (await linkCode(s, alice)).body.code as string
    s.clock.advance(10 * 60_000)
    const expired = await redeem(s, late)
    assert.equal(expired.body.error.code, "invalid_link_code")
  })

  it("lets an authenticated device add one directly; a login key in use is a conflict", async (t) => {
    const s = await startServer(t)
    const alice = await newUser(s.url, "alice")
    const stream = await StreamClient.connect(s.url, alice.token)
    t.after(() => stream.close())
    const laptop = await addDevice(s.url, alice)
    assert.equal(laptop.userId, alice.userId)
    await stream.until(() => stream.inbox().some((f) => f.item.kind === "deviceAdded"), "deviceAdded, live")
    assert.deepEqual(
      stream.inbox().map((f) => f.item),
      [{ kind: "deviceAdded", deviceId: laptop.deviceId, clientId: laptop.clientId, byClientId: alice.clientId }],
    )
    assert.equal(laptop.clientId, `${alice.userId}:${laptop.deviceId}@localhost`)
    const reused = await http(s.url, "POST", "/v1/devices", {
      token: alice.token,
      json: {
        loginKey: toBase64Url(laptop.publicKey),
        proof: signText(laptop, `mls-chat/v1 add device\n${alice.userId}\n${toBase64Url(laptop.publicKey)}`),
      },
    })
    assert.equal(reused.status, 409)
    assert.equal(reused.body.error.code, "conflict")
    // A proof made for another account does not add a device to this one.
    const id = newIdentity()
    const key = toBase64Url(id.publicKey)
    const bob = await newUser(s.url, "bob")
    const wrong = await http(s.url, "POST", "/v1/devices", {
      token: alice.token,
      json: { loginKey: key, proof: signText(id, `mls-chat/v1 add device\n${bob.userId}\n${key}`) },
    })
    assert.equal(wrong.body.error.code, "bad_signature")
  })

  it("binds a device's MLS key by its first upload and checks client id and key on every upload", async (t) => {
    const s = await startServer(t, { domain: "chat.example.org" })
    const alice = await newUser(s.url, "alice")
    const bob = await newUser(s.url, "bob")
    const phone = await linkDevice(s.url, alice)
    const now = s.clock.now()
    // The phone's MLS key is not its login key: the KeyPackage's own signature proves possession.
    const mls = { ...newIdentity(), name: "alice", clientId: phone.clientId }
    const first = await uploadKeyPackages(s.url, phone, [await makeEncodedKeyPackage(mls, { now })])
    assert.equal(first.body.results[0].status, "accepted")
    const dir = await lookup(s, bob, alice.userId)
    const entry = dir.body.devices.find((d: { deviceId: string }) => d.deviceId === phone.deviceId)
    assert.equal(entry.mlsKey, toBase64Url(mls.publicKey))
    assert.equal(entry.loginKey, toBase64Url(phone.publicKey))

    const otherDomain = phone.clientId.replace("@chat.example.org", "@evil.example.org")
    const cases: [string, string][] = [
      ["the other device's client id", await makeEncodedKeyPackage(mls, { now, identity: alice.clientId })],
      ["another account's client id", await makeEncodedKeyPackage(mls, { now, identity: bob.clientId })],
      ["another domain", await makeEncodedKeyPackage(mls, { now, identity: otherDomain })],
      [
        "the bare handle from a device that is not the oldest",
        await makeEncodedKeyPackage(mls, { now, identity: "alice" }),
      ],
      [
        "a changed key",
        await makeEncodedKeyPackage({ ...newIdentity(), name: "alice", clientId: phone.clientId }, { now }),
      ],
      ["the login key instead of the bound key", await makeEncodedKeyPackage(phone, { now })],
    ]
    for (const [what, kp] of cases) {
      const r = await uploadKeyPackages(s.url, phone, [kp])
      assert.equal(r.body.results[0].status, "rejected", what)
      assert.equal(r.body.results[0].reason, "credential_mismatch", what)
    }
    const lr = await http(s.url, "PUT", "/v1/users/alice/keypackages/last-resort", {
      token: phone.token,
      json: { keyPackage: cases[4]![1] },
    })
    assert.equal(lr.body.reason, "credential_mismatch", "the last-resort key is checked the same way")
    // The oldest device may still name itself by the bare handle (daemons from before devices).
    const legacy = await uploadKeyPackages(s.url, alice, [
      await makeEncodedKeyPackage(alice, { now, identity: "alice" }),
    ])
    assert.equal(legacy.body.results[0].status, "accepted")
    // Pools are per device: the phone holds one key, the first device one.
    for (const d of [alice, phone]) {
      const st = await http(s.url, "GET", "/v1/users/alice/keypackages/status", { token: d.token })
      assert.equal(st.body.available, 1)
    }
  })

  it("reserves one KeyPackage per active device, or one device's by client id; lists devices without keys", async (t) => {
    const s = await startServer(t)
    const alice = await newUser(s.url, "alice")
    const phone = await linkDevice(s.url, alice)
    const tablet = await linkDevice(s.url, alice)
    const bob = await newUser(s.url, "bob")
    await withKeys(s, alice, 2)
    await withKeys(s, phone, 2)
    const all = await http(s.url, "POST", "/v1/keypackages/reserve", { token: bob.token, json: { target: "alice" } })
    assert.equal(all.status, 201)
    assert.equal(all.body.userId, alice.userId)
    assert.deepEqual(
      all.body.keyPackages.map((k: { deviceId: string; clientId: string }) => [k.deviceId, k.clientId]),
      [
        [alice.deviceId, alice.clientId],
        [phone.deviceId, phone.clientId],
      ],
    )
    assert.deepEqual(all.body.missing, [{ deviceId: tablet.deviceId, clientId: tablet.clientId }])
    assert.equal(new Set(all.body.keyPackages.map((k: { reservationId: string }) => k.reservationId)).size, 2)
    assert.equal(all.body.ref, all.body.keyPackages[0].ref, "the old top-level fields are the first device's")

    const one = await http(s.url, "POST", "/v1/keypackages/reserve", {
      token: bob.token,
      json: { target: phone.clientId },
    })
    assert.deepEqual(
      one.body.keyPackages.map((k: { deviceId: string }) => k.deviceId),
      [phone.deviceId],
    )
    for (const d of [alice, phone]) {
      const st = await http(s.url, "GET", "/v1/users/alice/keypackages/status", { token: d.token })
      assert.equal(st.body.reserved, d === alice ? 1 : 2)
    }
    // Both reservations of the account's keys are spent by one Commit adding both devices.
    const g = await createGroup(s.url, bob)
    const keyPackages = all.body.keyPackages.map((k: { ref: string; reservationId: string; clientId: string }) => ({
      user: k.clientId,
      ref: k.ref,
      reservationId: k.reservationId,
    }))
    const r = await postCommit(s.url, bob, g, { keyPackages, welcome: fakeWelcome() })
    assert.equal(r.status, 201)
  })

  it("delivers per device: both devices of a user get the Welcome and read the log; the roster lists devices", async (t) => {
    const s = await startServer(t)
    const alice = await newUser(s.url, "alice")
    const phone = await linkDevice(s.url, alice)
    const bob = await newUser(s.url, "bob")
    await withKeys(s, alice, 1)
    await withKeys(s, phone, 1)
    const stream = await StreamClient.connect(s.url, phone.token)
    t.after(() => stream.close())
    const g = await createGroup(s.url, bob)
    const all = await http(s.url, "POST", "/v1/keypackages/reserve", { token: bob.token, json: { target: "alice" } })
    const keyPackages = all.body.keyPackages.map((k: { ref: string; reservationId: string }) => ({
      ref: k.ref,
      reservationId: k.reservationId,
    }))
    const welcome = fakeWelcome()
    assert.equal((await postCommit(s.url, bob, g, { keyPackages, welcome })).status, 201)
    const sent = await postMessage(s.url, bob, g)
    assert.equal(sent.status, 201)

    for (const d of [alice, phone]) {
      const inbox = (await readInbox(s.url, d)).body.items.map((i: { item: { kind: string } }) => i.item)
      const w = inbox.find((i: { kind: string }) => i.kind === "welcome")
      assert.deepEqual(w, {
        kind: "welcome",
        groupId: g.id,
        seq: 1,
        epoch: 1,
        by: "bob",
        byClientId: bob.clientId,
        welcome,
      })
      const log = await readLog(s.url, d, g)
      assert.deepEqual(
        log.body.entries.map((e: { seq: number; sender: string; senderClientId: string }) => [
          e.seq,
          e.sender,
          e.senderClientId,
        ]),
        [[2, "bob", bob.clientId]],
      )
    }
    await stream.until(() => stream.entries(g.id).some((e) => e.seq === 2), "the phone's stream gets the message")
    const info = await http(s.url, "GET", `/v1/groups/${g.id}`, { token: phone.token })
    assert.deepEqual(info.body.members, ["alice", "bob"])
    assert.deepEqual(
      info.body.devices.map((d: { clientId: string }) => d.clientId),
      [alice.clientId, phone.clientId, bob.clientId].sort(),
    )
    // Removing by client id takes one device off the roster; its log ends at that Commit, the other reads on.
    const removal = await postCommit(s.url, bob, g, { removes: [phone.clientId] })
    assert.equal(removal.status, 201)
    assert.equal((await postMessage(s.url, bob, g)).status, 201)
    assert.deepEqual(
      (await readLog(s.url, phone, g)).body.entries.map((e: { seq: number }) => e.seq),
      [2, 3],
    )
    assert.deepEqual(
      (await readLog(s.url, alice, g)).body.entries.map((e: { seq: number }) => e.seq),
      [2, 3, 4],
    )
    const mine = await postMessage(s.url, phone, g)
    assert.equal(mine.body.error.code, "not_member")
  })

  it("removes a device: sessions and streams end, keys go, it cannot log in, the directory shows it removed", async (t) => {
    const s = await startServer(t)
    const alice = await newUser(s.url, "alice")
    const laptop = await linkDevice(s.url, alice)
    const bob = await newUser(s.url, "bob")
    await withKeys(s, laptop, 3)
    const held = await http(s.url, "POST", "/v1/keypackages/reserve", {
      token: bob.token,
      json: { target: laptop.clientId },
    })
    assert.equal(held.status, 201)
    const stream = await StreamClient.connect(s.url, laptop.token)
    const tablet = await linkDevice(s.url, alice)
    const tabletStream = await StreamClient.connect(s.url, tablet.token)
    t.after(() => tabletStream.close())

    const r = await http(s.url, "DELETE", `/v1/devices/${laptop.deviceId}`, { token: alice.token })
    assert.equal(r.status, 200)
    assert.deepEqual(r.body, { deviceId: laptop.deviceId, removedAt: s.clock.now() })
    await stream.until(() => stream.closed, "the removed device's stream closes")
    assert.equal(stream.closeCode, closeCodes.sessionEnded)
    assert.equal(stream.closeReason, closeReasons.deviceRemoved)
    // The remaining devices are told, to remove its leaves from their groups; the removed one is not.
    const removed = {
      kind: "deviceRemoved",
      deviceId: laptop.deviceId,
      clientId: laptop.clientId,
      byClientId: alice.clientId,
    }
    await tabletStream.until(() => tabletStream.inbox().some((f) => f.item.kind === "deviceRemoved"), "deviceRemoved")
    assert.deepEqual(tabletStream.inbox().at(-1)!.item, removed)
    const aliceInbox = (await readInbox(s.url, alice)).body.items.map((i: { item: { kind: string } }) => i.item)
    assert.deepEqual(aliceInbox.at(-1), removed)
    assert.equal(stream.inbox().filter((f) => f.item.kind === "deviceRemoved").length, 0)

    const gone = await http(s.url, "GET", "/v1/users/alice/keypackages/status", { token: laptop.token })
    assert.equal(gone.body.error.code, "unauthenticated", "its session is revoked")
    const keys = await count(s.app.store, "SELECT count(*) AS n FROM keypackages WHERE owner = ?", laptop.deviceId)
    assert.equal(keys, 0, "its KeyPackages are deleted, the reserved one too")
    const spend = await http(s.url, "POST", "/v1/keypackages/spend", {
      token: bob.token,
      json: { ref: held.body.ref, reservationId: held.body.reservationId },
    })
    assert.equal(spend.body.error.code, "keypackage_not_found")
    const c = await http(s.url, "POST", "/v1/sessions/challenge", {
      json: { username: "alice", deviceId: laptop.deviceId },
    })
    assert.equal(c.status, 403)
    assert.equal(c.body.error.code, "device_removed")
    const byClient = await http(s.url, "POST", "/v1/keypackages/reserve", {
      token: bob.token,
      json: { target: laptop.clientId },
    })
    assert.equal(byClient.body.error.code, "unknown_device")
    const dir = (await lookup(s, bob, "alice")).body.devices as { deviceId: string; removedAt: number | null }[]
    assert.deepEqual(
      dir.map((d) => [d.deviceId, d.removedAt]),
      [
        [alice.deviceId, null],
        [laptop.deviceId, s.clock.now()],
        [tablet.deviceId, null],
      ],
    )
    // Asking again answers the same removal; the last active device stays; another account's device is unknown.
    const again = await http(s.url, "DELETE", `/v1/devices/${laptop.deviceId}`, { token: alice.token })
    assert.deepEqual(again.body, r.body)
    assert.equal((await http(s.url, "DELETE", `/v1/devices/${tablet.deviceId}`, { token: tablet.token })).status, 200)
    const last = await http(s.url, "DELETE", `/v1/devices/${alice.deviceId}`, { token: alice.token })
    assert.equal(last.body.error.code, "conflict")
    const foreign = await http(s.url, "DELETE", `/v1/devices/${alice.deviceId}`, { token: bob.token })
    assert.equal(foreign.status, 404)
    assert.equal(foreign.body.error.code, "unknown_device")
    // A login without deviceId picks the oldest active device.
    assert.ok(await login(s.url, "alice", alice))
  })

  it("limits redemptions per address and open link codes per account", async (t) => {
    const s = await startServer(t, { challengeIpBurst: 3, challengeIpPerMinute: 0 })
    const alice = await newUser(s.url, "alice")
    for (let i = 0; i < 3; i++)
      assert.equal((await redeem(s, "0000-0000-0000-0000")).body.error.code, "invalid_link_code")
    const fourth = await redeem(s, "0000-0000-0000-0000")
    assert.equal(fourth.status, 429)
    assert.equal(fourth.body.error.code, "rate_limited")
    for (let i = 0; i < 8; i++) assert.equal((await linkCode(s, alice)).status, 201)
    const ninth = await linkCode(s, alice)
    assert.equal(ninth.status, 429)
    assert.equal(ninth.body.error.code, "rate_limited")
    s.clock.advance(10 * 60_000)
    assert.equal((await linkCode(s, alice)).status, 201, "expired codes no longer count")
  })

  it("answers bad inputs with stable codes and changes nothing", async (t) => {
    const s = await startServer(t)
    const alice = await newUser(s.url, "alice")
    const g = await createGroup(s.url, alice)
    const before = await rowCounts(s.app.store)
    const cases: [string, Promise<{ status: number; body: { error: { code: string } } }>, number, string][] = [
      ["malformed link code", redeem(s, "not-a-code"), 400, "invalid_request"],
      ["unknown link code", redeem(s, "0000-0000-0000-0000"), 401, "invalid_link_code"],
      [
        "unknown device at login",
        http(s.url, "POST", "/v1/sessions/challenge", { json: { username: "alice", deviceId: "0".repeat(16) } }),
        404,
        "unknown_device",
      ],
      [
        "malformed device id at login",
        http(s.url, "POST", "/v1/sessions/challenge", { json: { username: "alice", deviceId: "XYZ" } }),
        400,
        "invalid_request",
      ],
      [
        "malformed device id to remove",
        http(s.url, "DELETE", "/v1/devices/12", { token: alice.token }),
        400,
        "invalid_request",
      ],
      [
        "unknown user id",
        http(s.url, "GET", "/v1/users/00000000-0000-4000-8000-000000000000", { token: alice.token }),
        404,
        "unknown_user",
      ],
      [
        "malformed reservation target",
        http(s.url, "POST", "/v1/keypackages/reserve", { token: alice.token, json: { target: "Alice@@" } }),
        400,
        "invalid_request",
      ],
      [
        "unknown client id",
        http(s.url, "POST", "/v1/keypackages/reserve", {
          token: alice.token,
          json: { target: `${alice.userId}:${"0".repeat(16)}@localhost` },
        }),
        404,
        "unknown_device",
      ],
      [
        "a removal of a device not on the roster",
        postCommit(s.url, alice, { ...g }, { removes: [`${alice.userId}:${"0".repeat(16)}@localhost`] }),
        409,
        "conflict",
      ],
      [
        "a Commit removing its own sender",
        postCommit(s.url, alice, { ...g }, { removes: [alice.clientId] }),
        409,
        "conflict",
      ],
      ["a link code without a session", http(s.url, "POST", "/v1/devices/link-codes", {}), 401, "unauthenticated"],
    ]
    for (const [what, pending, status, code] of cases) {
      const r = await pending
      assert.equal(r.status, status, what)
      assert.equal(r.body.error.code, code, what)
    }
    assert.deepEqual(await rowCounts(s.app.store), before)
    // The login message names the handle, whichever name the challenge was asked with.
    const c = await http(s.url, "POST", "/v1/sessions/challenge", { json: { username: alice.userId } })
    assert.equal(c.body.handle, "alice")
    const ok = await http(s.url, "POST", "/v1/sessions", {
      json: { challengeId: c.body.challengeId, signature: signText(alice, loginMessage("alice", c.body.nonce)) },
    })
    assert.equal(ok.status, 201)
    assert.equal(ok.body.clientId, alice.clientId)
  })
})
