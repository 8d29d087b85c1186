import assert from "node:assert/strict"
import { describe, it } from "node:test"
import { toBase64Url } from "../../rpc-schema/common.js"
import { loginMessage, registrationMessage } from "../../rpc-schema/server/http/auth.js"
import { routes, type RouteDescriptor } from "../../rpc-schema/server/index.js"
import { http } from "../helpers/http.js"
import { startServer } from "../helpers/server.js"
import { login, makeEncodedKeyPackages, newIdentity, newUser, register, signText } from "../helpers/users.js"

const path = (r: RouteDescriptor) =>
  r.path.replace(":username", "alice").replace(":ref", "A".repeat(43)).replace(":deviceId", "0".repeat(16))

describe("authentication", () => {
  it("registers a name once; a taken name gets 409 username_taken", async (t) => {
    const s = await startServer(t)
    assert.equal((await register(s.url, "alice")).status, 201)
    const again = await register(s.url, "alice")
    assert.equal(again.status, 409)
    assert.equal(again.body.error.code, "username_taken")
  })

  it("refuses a registration whose proof of possession is made with another key", async (t) => {
    const s = await startServer(t)
    const id = newIdentity()
    const signatureKey = toBase64Url(id.publicKey)
    const r = await http(s.url, "POST", "/v1/users", {
      json: {
        username: "alice",
        signatureKey,
        proof: signText(newIdentity(), registrationMessage("alice", signatureKey)),
      },
    })
    assert.equal(r.status, 400)
    assert.equal(r.body.error.code, "bad_signature")
    assert.equal((await register(s.url, "alice", id)).status, 201, "the name was not taken by the failed attempt")
  })

  it("answers 401 on every authenticated route to a missing, malformed or expired token", async (t) => {
    const s = await startServer(t)
    const alice = await newUser(s.url, "alice")
    const authed = routes.filter((r) => r.auth)
    assert.ok(authed.length >= 8, "every authenticated route is checked")
    const open = routes.filter((r) => !r.auth).map((r) => r.path)
    assert.deepEqual(open.sort(), [
      "/v1/devices/link",
      "/v1/health",
      "/v1/sessions",
      "/v1/sessions/challenge",
      "/v1/users",
    ])
    const expiredAt = s.clock.now() + 24 * 3600_000
    for (const header of [
      undefined,
      "Bearer",
      "Bearer not-a-token",
      `Basic ${alice.token}`,
      "Bearer " + "x".repeat(43),
    ]) {
      for (const r of authed) {
        const res = await http(s.url, r.method, path(r), {
          headers: header ? { authorization: header } : {},
          ...(r.body ? { json: {} } : {}),
        })
        assert.equal(res.status, 401, `${r.method} ${r.path} with ${header}`)
        assert.equal(res.body.error.code, "unauthenticated")
      }
    }
    assert.equal((await http(s.url, "GET", "/v1/users/alice", { token: alice.token })).status, 200)
    s.clock.set(expiredAt)
    for (const r of authed) {
      const res = await http(s.url, r.method, path(r), { token: alice.token, ...(r.body ? { json: {} } : {}) })
      assert.equal(res.status, 401, `${r.method} ${r.path} with an expired token`)
    }
  })

  it("refuses a replayed challenge response, a wrong signature, and an expired challenge", async (t) => {
    const s = await startServer(t)
    const id = newIdentity()
    await register(s.url, "alice", id)
    const c = await http(s.url, "POST", "/v1/sessions/challenge", { json: { username: "alice" } })
    const answer = { challengeId: c.body.challengeId, signature: signText(id, loginMessage("alice", c.body.nonce)) }
    const first = await http(s.url, "POST", "/v1/sessions", { json: answer })
    assert.equal(first.status, 201)
    const replay = await http(s.url, "POST", "/v1/sessions", { json: answer })
    assert.equal(replay.status, 401)
    assert.equal(replay.body.error.code, "invalid_challenge")

    const c2 = await http(s.url, "POST", "/v1/sessions/challenge", { json: { username: "alice" } })
    const forged = await http(s.url, "POST", "/v1/sessions", {
      json: {
        challengeId: c2.body.challengeId,
        signature: signText(newIdentity(), loginMessage("alice", c2.body.nonce)),
      },
    })
    assert.equal(forged.status, 400)
    assert.equal(forged.body.error.code, "bad_signature")

    const c3 = await http(s.url, "POST", "/v1/sessions/challenge", { json: { username: "alice" } })
    s.clock.advance(61_000)
    const late = await http(s.url, "POST", "/v1/sessions", {
      json: { challengeId: c3.body.challengeId, signature: signText(id, loginMessage("alice", c3.body.nonce)) },
    })
    assert.equal(late.body.error.code, "invalid_challenge")
    const unknown = await http(s.url, "POST", "/v1/sessions/challenge", { json: { username: "nobody" } })
    assert.equal(unknown.status, 404)
    assert.equal(unknown.body.error.code, "unknown_user")
    assert.ok(await login(s.url, "alice", id), "a fresh challenge still works")
  })

  it("forbids uploading for, reading the status of, or listing the refs of another user", async (t) => {
    const s = await startServer(t)
    const alice = await newUser(s.url, "alice")
    const mallory = await newUser(s.url, "mallory")
    const kps = await makeEncodedKeyPackages(alice, 2, { now: s.clock.now() })
    const up = await http(s.url, "POST", "/v1/users/alice/keypackages", {
      token: mallory.token,
      json: { keyPackages: kps },
    })
    assert.equal(up.status, 403)
    assert.equal(up.body.error.code, "forbidden")
    for (const p of ["/v1/users/alice/keypackages/status", "/v1/users/alice/keypackages/refs"]) {
      const r = await http(s.url, "GET", p, { token: mallory.token })
      assert.equal(r.status, 403, p)
    }
    const lr = await http(s.url, "PUT", "/v1/users/alice/keypackages/last-resort", {
      token: mallory.token,
      json: { keyPackage: kps[0] },
    })
    assert.equal(lr.status, 403)
    const st = await http(s.url, "GET", "/v1/users/alice/keypackages/status", { token: alice.token })
    assert.equal(st.body.available, 0)
    assert.equal(st.body.lastResort, null)
  })

  it("looks up an account by handle or user id: its devices and keys", async (t) => {
    const s = await startServer(t)
    const alice = await newUser(s.url, "alice")
    const r = await http(s.url, "GET", "/v1/users/alice", { token: alice.token })
    const key = toBase64Url(alice.publicKey)
    const { userId, devices } = r.body
    assert.deepEqual(r.body, { userId, handle: "alice", devices, username: "alice", signatureKey: key })
    assert.equal(devices.length, 1)
    assert.equal(devices[0].clientId, `${userId}:${devices[0].deviceId}@localhost`)
    assert.equal(devices[0].loginKey, key)
    assert.equal(devices[0].mlsKey, null, "no MLS key is bound before the first upload")
    assert.equal(devices[0].removedAt, null)
    assert.deepEqual((await http(s.url, "GET", `/v1/users/${userId}`, { token: alice.token })).body, r.body)
    assert.equal((await http(s.url, "GET", "/v1/users/bob", { token: alice.token })).body.error.code, "unknown_user")
  })
})
