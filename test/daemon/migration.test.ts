/**
 * Upgrading databases written by the build before accounts had devices (commit ed5666f): the fixture in
 * test/fixtures/legacy/ holds a server database and the daemon databases of alice and bob, members of one group whose
 * leaves carry bare user names, with two messages. Server (schema 5 → 6) and daemons (6 → 7) upgrade in place.
 */
import assert from "node:assert/strict"
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, it, type TestContext } from "node:test"
import Database from "better-sqlite3"
import { startDaemon, type TestDaemon } from "../helpers/daemon.js"
import { startServer } from "../helpers/server.js"

const fixture = join(import.meta.dirname, "..", "fixtures", "legacy")

/** A daemon on a copy of the fixture's database for `name`, pointed at the test server (it served another port). */
async function upgraded(t: TestContext, dir: string, name: string, server: string): Promise<TestDaemon> {
  const dataDir = join(dir, name)
  mkdirSync(dataDir, { mode: 0o700 })
  const dbPath = join(dataDir, "mlsd.db")
  copyFileSync(join(fixture, `${name}.db`), dbPath)
  chmodSync(dbPath, 0o600)
  const db = new Database(dbPath)
  assert.equal(db.pragma("user_version", { simple: true }), 6, "written by the build before devices")
  db.prepare("UPDATE identity SET server = ?").run(server)
  db.close()
  const d = await startDaemon(t, { profile: name, dataDir })
  await d.client.call("events.subscribe")
  // Its first login tells it which device it is; until then it is not online. Re-checked on every notification (a
  // maintenance pass follows going online), and at least every second, for at most 30 s.
  let wake = () => {}
  const off = d.client.onAny(() => wake())
  try {
    const deadline = Date.now() + 30_000
    while ((await d.client.call("daemon.status")).clientId === null) {
      assert.ok(Date.now() < deadline, `${name}: no device ids within 30 s`)
      await new Promise<void>((resolve) => {
        wake = resolve
        setTimeout(resolve, 1000).unref()
      })
    }
  } finally {
    off()
  }
  return d
}

describe("migration from before devices", () => {
  it("each profile becomes device 1 of its account; the old group, its history and new groups work", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "mls-legacy-"))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    const serverDb = join(dir, "server.db")
    copyFileSync(join(fixture, "server.db"), serverDb)
    const s = await startServer(t, { dbPath: serverDb })
    const alice = await upgraded(t, dir, "alice", s.url)
    const bob = await upgraded(t, dir, "bob", s.url)

    const id = await alice.client.call("identity.get")
    assert.equal(id.username, "alice")
    assert.ok(id.clientId?.startsWith(`${id.userId}:${id.deviceId}@`), "the ids came with the first login")
    assert.equal(id.loginKey, id.signatureKey, "the old key is both the login and the MLS key")
    const devices = await alice.client.call("identity.devices")
    assert.deepEqual(
      devices.devices.map((d) => [d.deviceId, d.self, d.signatureKey]),
      [[id.deviceId, true, id.signatureKey]],
    )

    // The group from before: history kept, leaves with bare names, messages both ways.
    const history = await bob.client.call("message.list", { group: "legacy" })
    assert.deepEqual(
      history.messages.map((m) => [m.sender, m.senderDevice, m.text]),
      [
        ["alice", null, "before devices"],
        ["bob", null, "reply before devices"],
      ],
    )
    const legacy = await bob.client.call("group.members", { group: "legacy" })
    assert.deepEqual(
      legacy.members.map((m) => [m.username, m.devices.map((d) => d.clientId)]),
      [
        ["alice", ["alice"]],
        ["bob", ["bob"]],
      ],
    )
    const got = bob.client.next("message.received", (p) => p.text === "after devices", 20_000)
    await alice.client.call("message.send", { group: "legacy", text: "after devices" })
    assert.equal((await got).senderDevice, id.deviceId, "a bare-name leaf is its account's first device")
    const got2 = alice.client.next("message.received", (p) => p.text === "bob after devices", 20_000)
    await bob.client.call("message.send", { group: "legacy", text: "bob after devices" })
    await got2

    // The pools were made again with client ids: a new group works the new way.
    await Promise.all([alice, bob].map((d) => d.client.call("pool.refresh")))
    const fresh = await alice.client.call("group.create", { name: "fresh" })
    const joined = bob.client.next("group.joined", (p) => p.groupId === fresh.groupId, 20_000)
    await alice.client.call("group.invite", { group: "fresh", user: "bob" })
    await joined
    const m = await alice.client.call("group.members", { group: "fresh" })
    const bobId = await bob.client.call("identity.get")
    assert.deepEqual(
      m.members.map((x) => x.devices.map((d) => d.clientId)),
      [[id.clientId], [bobId.clientId]],
    )

    // A second device of alice joins the old group too (added by alice's first device): its leaf has a client id,
    // the others keep their bare names, and everyone reads everyone.
    const { code } = await alice.client.call("identity.linkCode")
    const alice2 = await startDaemon(t, { server: s.url, profile: "alice2" })
    const a2Joined = alice2.client.next("group.joined", (p) => p.name === "legacy", 30_000)
    await alice2.client.call("events.subscribe", { after: 0 })
    await alice2.client.call("identity.link", { code })
    await alice2.client.call("pool.refresh")
    await a2Joined
    const heard = [alice, bob].map((d) => d.client.next("message.received", (p) => p.text === "new laptop", 20_000))
    await alice2.client.call("message.send", { group: "legacy", text: "new laptop" })
    await Promise.all(heard)
    const got3 = alice2.client.next("message.received", (p) => p.text === "welcome, laptop", 20_000)
    await bob.client.call("message.send", { group: "legacy", text: "welcome, laptop" })
    await got3
  })
})
