import assert from "node:assert/strict"
import { describe, it } from "node:test"
import { closeCodes, closeReasons } from "../../rpc-schema/server/ws.js"
import { createGroup, postMessage } from "../helpers/groups.js"
import { http } from "../helpers/http.js"
import { startServer, untilStreamConnections } from "../helpers/server.js"
import { StreamClient, UpgradeRefused } from "../helpers/stream.js"
import { login, newUser, type TestUser } from "../helpers/users.js"

const hour = 3600_000

async function caughtUp(base: string, token: string): Promise<StreamClient> {
  const c = await StreamClient.connect(base, token)
  await c.until(() => c.caughtUp(), "caughtUp")
  return c
}

/** `user` creates a group and posts one message; every client in `receivers` gets its entry. */
async function delivers(base: string, user: TestUser, receivers: StreamClient[]): Promise<string> {
  const g = await createGroup(base, user)
  assert.equal((await postMessage(base, user, g)).status, 201)
  for (const c of receivers) await c.until(() => c.entries(g.id).length === 1, "the new message")
  return g.id
}

async function closedWith(c: StreamClient, code: number, reason: string): Promise<void> {
  await c.until(() => c.closed, "the server's close")
  assert.deepEqual([c.closeCode, c.closeReason], [code, reason])
}

const refusal = (e: unknown) => {
  assert.ok(e instanceof UpgradeRefused, String(e))
  return { status: e.status, code: e.body.error.code, details: e.body.error.details }
}

describe("stream limits", () => {
  it("closes a connection that sends no valid hello in time; one that said hello streams on", async (t) => {
    const s = await startServer(t, { wsHelloTimeoutMs: 150 })
    const alice = await newUser(s.url, "alice")
    const greeted = await caughtUp(s.url, alice.token)
    t.after(() => greeted.close())
    const silent = await StreamClient.connect(s.url, alice.token, { hello: false })
    const ackOnly = await StreamClient.connect(s.url, alice.token, { hello: false })
    ackOnly.ws.send(JSON.stringify({ type: "ack", upTo: 0 })) // a valid frame, but not a hello

    await closedWith(silent, closeCodes.helloTimeout, closeReasons.helloTimeout)
    await closedWith(ackOnly, closeCodes.helloTimeout, closeReasons.helloTimeout)
    assert.ok(!greeted.closed)
    await delivers(s.url, alice, [greeted])
    await untilStreamConnections(s, 1)
  })

  it("ends a stream when its session expires by the server's clock; a newer session of the user streams on", async (t) => {
    const s = await startServer(t)
    const alice = await newUser(s.url, "alice")
    const expiresAt = s.clock.now() + 24 * hour
    s.clock.advance(hour)
    const newer = { ...alice, token: await login(s.url, "alice", alice) }
    const old = await caughtUp(s.url, alice.token)
    const fresh = await caughtUp(s.url, newer.token)
    t.after(() => fresh.close())

    s.clock.set(expiresAt - 1)
    await delivers(s.url, newer, [old, fresh]) // still open a millisecond before
    s.clock.advance(1)
    await closedWith(old, closeCodes.sessionEnded, closeReasons.sessionExpired)
    const g = await delivers(s.url, newer, [fresh])
    assert.equal(old.entries(g).length, 0)
    await assert.rejects(StreamClient.connect(s.url, alice.token), (e) => {
      assert.deepEqual(refusal(e), { status: 401, code: "unauthenticated", details: undefined })
      return true
    })
  })

  it("ends every stream of a revoked session at once; the user's other session and other users stream on", async (t) => {
    const s = await startServer(t)
    const alice = await newUser(s.url, "alice")
    const other = { ...alice, token: await login(s.url, "alice", alice) }
    const bob = await newUser(s.url, "bob")
    const revoked = [await caughtUp(s.url, alice.token), await caughtUp(s.url, alice.token)]
    const kept = [await caughtUp(s.url, other.token), await caughtUp(s.url, bob.token)]
    t.after(() => Promise.all(kept.map((c) => c.close())))

    const out = await http(s.url, "DELETE", "/v1/sessions", { token: alice.token })
    assert.deepEqual([out.status, out.body], [200, {}])
    for (const c of revoked) await closedWith(c, closeCodes.sessionEnded, closeReasons.sessionRevoked)

    // The revoked token is refused everywhere, logging out again included; nothing else changed.
    const again = await http(s.url, "DELETE", "/v1/sessions", { token: alice.token })
    assert.deepEqual([again.status, again.body.error.code], [401, "unauthenticated"])
    assert.equal((await http(s.url, "GET", "/v1/users/alice", { token: alice.token })).status, 401)
    await assert.rejects(StreamClient.connect(s.url, alice.token), /upgrade refused: 401/)
    assert.equal((await http(s.url, "GET", "/v1/users/alice", { token: other.token })).status, 200)
    await delivers(s.url, other, [kept[0]!])
    await delivers(s.url, bob, [kept[1]!])
    await untilStreamConnections(s, 2)
  })

  it("ends a stream whose session was revoked after its upgrade was authenticated but before it was registered", async (t) => {
    const s = await startServer(t)
    const alice = await newUser(s.url, "alice")
    const other = { ...alice, token: await login(s.url, "alice", alice) }
    const kept = await caughtUp(s.url, other.token)
    t.after(() => kept.close())
    // The window cannot be hit by timing: the real AuthService's authenticate is wrapped, once, so that the real logout
    // (DELETE /v1/sessions) completes after the upgrade's authentication and before the stream registers its connection.
    const auth = s.app.auth
    const authenticate = auth.authenticate.bind(auth)
    let loggedOut = false
    auth.authenticate = async (header) => {
      auth.authenticate = authenticate
      const session = await authenticate(header)
      const out = await http(s.url, "DELETE", "/v1/sessions", { token: alice.token })
      assert.deepEqual([out.status, out.body], [200, {}])
      loggedOut = true
      return session
    }
    const late = await StreamClient.connect(s.url, alice.token)
    assert.ok(loggedOut)

    await closedWith(late, closeCodes.sessionEnded, closeReasons.sessionRevoked)
    await delivers(s.url, other, [kept])
    await untilStreamConnections(s, 1)
  })

  it("refuses upgrades past the per-address limit with 429 too_many_connections; other addresses are unaffected", async (t) => {
    const s = await startServer(t, { wsMaxConnectionsPerIp: 2 })
    const alice = await newUser(s.url, "alice")
    // A refused upgrade (bad token) does not keep its slot.
    await assert.rejects(StreamClient.connect(s.url, "x".repeat(43)), /upgrade refused: 401/)
    const held = [await caughtUp(s.url, alice.token), await caughtUp(s.url, alice.token)]
    const elsewhere = await StreamClient.connect(s.url, alice.token, { localAddress: "127.0.0.2" })
    t.after(() => Promise.all([...held, elsewhere].map((c) => c.close())))
    await elsewhere.until(() => elsewhere.caughtUp(), "caughtUp")

    for (let i = 0; i < 3; i++) {
      await assert.rejects(StreamClient.connect(s.url, alice.token), (e) => {
        assert.deepEqual(refusal(e), { status: 429, code: "too_many_connections", details: { maxConnections: 2 } })
        return true
      })
    }
    assert.equal((await http(s.url, "GET", "/v1/health")).status, 200)
    await delivers(s.url, alice, [...held, elsewhere])

    // A closed stream frees its slot.
    await held[0]!.close()
    await untilStreamConnections(s, 2)
    const next = await caughtUp(s.url, alice.token)
    held.push(next)
    await delivers(s.url, alice, [held[1]!, next, elsewhere])
  })
})
