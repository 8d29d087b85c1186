import assert from "node:assert/strict"
import { describe, it } from "node:test"
import { startDaemon } from "../helpers/daemon.js"
import { startServer } from "../helpers/server.js"
import { newUser } from "../helpers/users.js"

const code = (c: string) => (e: any) => e.appCode === c

describe("identity", () => {
  it("registers once per profile; a taken name changes nothing; an unreachable server can be retried", async (t) => {
    const s = await startServer(t)
    await newUser(s.url, "bob")
    const d = await startDaemon(t, { server: s.url })
    const c = d.client
    await assert.rejects(c.call("identity.register", { username: "bob" }), code("username_taken"))
    assert.deepEqual(await c.call("identity.get"), {
      registered: false,
      username: null,
      userId: null,
      deviceId: null,
      clientId: null,
      server: null,
      signatureKey: null,
      loginKey: null,
      registeredAt: null,
    })
    await s.stop()
    await assert.rejects(c.call("identity.register", { username: "alice" }), code("server_unreachable"))
    await s.start()
    const id = await c.call("identity.register", { username: "alice" })
    assert.equal(id.registered, true)
    assert.equal(id.server, s.url)
    // One device of a new account: its client id names both, and its MLS key is not its login key.
    assert.ok(id.clientId?.startsWith(`${id.userId}:${id.deviceId}@`), id.clientId ?? "")
    assert.notEqual(id.signatureKey, id.loginKey)
    await assert.rejects(c.call("identity.register", { username: "carol" }), code("already_registered"))
    const st = await c.call("daemon.status")
    assert.equal(st.username, "alice")
    assert.deepEqual([st.userId, st.deviceId, st.clientId], [id.userId, id.deviceId, id.clientId])
    assert.deepEqual(await c.call("identity.get"), id)
  })
})
