import assert from "node:assert/strict"
import { randomBytes } from "node:crypto"
import { describe, it } from "node:test"
import { registered } from "../helpers/chat.js"
import { sql } from "../helpers/db.js"
import { startDaemon, type TestDaemon } from "../helpers/daemon.js"
import { startServer, type TestServer } from "../helpers/server.js"

const code = (c: string) => (e: any) => e.appCode === c

/** A second daemon linked to `first`'s account with a link code, subscribed, with its pool on the server. */
async function linkedDevice(t: any, s: TestServer, first: TestDaemon, profile: string): Promise<TestDaemon> {
  const { code: linkCode } = await first.client.call("identity.linkCode")
  const d = await startDaemon(t, { server: s.url, profile })
  await d.client.call("events.subscribe", { after: 0 })
  const id = await d.client.call("identity.link", { code: linkCode })
  assert.equal(id.username, (await first.client.call("identity.get")).username)
  await d.client.call("pool.refresh")
  return d
}

const deviceOf = async (d: TestDaemon) => (await d.client.call("identity.get")).deviceId!

describe("devices", () => {
  it("a user with two devices: both get every message, a new device is added by the other, removal takes it out", async (t) => {
    const s = await startServer(t)
    const alice1 = await registered(t, s.url, "alice")
    const bob = await registered(t, s.url, "bob")
    const team = await alice1.client.call("group.create", { name: "team" })
    const bobJoined = bob.client.next("group.joined", (p) => p.groupId === team.groupId, 20_000)
    await alice1.client.call("group.invite", { group: "team", user: "bob" })
    await bobJoined

    // A second laptop: linked with a one-time code, its own keys. alice1 watches for it and adds it to "team", unless
    // the laptop joins it by external Commit first (test/daemon/externalJoin.test.ts): whichever Commit comes first.
    const bobSeesDevice = bob.client.next("device.added", (p) => p.username === "alice", 30_000)
    const alice2 = await linkedDevice(t, s, alice1, "alice-laptop")
    const a2 = await alice2.client.call("identity.get")
    const a1 = await alice1.client.call("identity.get")
    assert.equal(a2.userId, a1.userId)
    assert.notEqual(a2.deviceId, a1.deviceId)
    // Subscribed again from the start: a group.joined that came before this listener is replayed.
    const a2Joined = alice2.client.next("group.joined", (p) => p.groupId === team.groupId, 30_000)
    await alice2.client.call("events.subscribe", { after: 0 })
    await a2Joined
    assert.equal((await bobSeesDevice).deviceId, a2.deviceId)
    const devices = await alice1.client.call("identity.devices")
    assert.deepEqual(
      devices.devices.map((d) => [d.deviceId, d.self, d.removedAt]),
      [
        [a1.deviceId, true, null],
        [a2.deviceId, false, null],
      ],
    )

    // Messages reach the other user and the sender's other device, each naming the sending device.
    const heard = async (from: TestDaemon, text: string, to: TestDaemon[]) => {
      const got = to.map((d) => d.client.next("message.received", (p) => p.text === text, 20_000))
      await from.client.call("message.send", { group: team.groupId, text })
      return Promise.all(got)
    }
    for (const m of await heard(alice1, "from laptop 1", [bob, alice2]))
      assert.deepEqual([m.sender, m.senderDevice], ["alice", a1.deviceId])
    for (const m of await heard(alice2, "from laptop 2", [bob, alice1]))
      assert.deepEqual([m.sender, m.senderDevice], ["alice", a2.deviceId])
    await heard(bob, "hi both", [alice1, alice2])
    const members = await bob.client.call("group.members", { group: team.groupId })
    assert.deepEqual(
      members.members.map((m) => [m.username, m.devices.map((d) => d.deviceId)]),
      [
        ["alice", [a1.deviceId, a2.deviceId]],
        ["bob", [await deviceOf(bob)]],
      ],
    )

    // Inviting a user adds every device of it in one Commit.
    const news = await bob.client.call("group.create", { name: "news" })
    const both = [alice1, alice2].map((d) => d.client.next("group.joined", (p) => p.groupId === news.groupId, 20_000))
    const invited = await bob.client.call("group.invite", { group: "news", user: "alice" })
    assert.equal(invited.epoch, 1)
    assert.deepEqual(invited.members, ["bob", "alice"])
    await Promise.all(both)
    await assert.rejects(bob.client.call("group.invite", { group: "news", user: "alice" }), code("conflict"))

    // The laptop is lost: alice1 removes it on the server, then from both groups.
    await assert.rejects(
      alice1.client.call("identity.removeDevice", { deviceId: a1.deviceId! }),
      code("invalid_request"),
    )
    const gone = [team, news].map((g) =>
      bob.client.next(
        "group.updated",
        (p) => p.groupId === g.groupId && p.removedDevices.some((d) => d.deviceId === a2.deviceId),
        30_000,
      ),
    )
    const removed = await alice1.client.call("identity.removeDevice", { deviceId: a2.deviceId! })
    assert.equal(removed.deviceId, a2.deviceId)
    for (const u of await Promise.all(gone)) {
      assert.deepEqual([...u.members].sort(), ["alice", "bob"])
      assert.deepEqual(u.removed, [], "alice herself stays")
    }
    const listed = (await alice1.client.call("identity.devices")).devices.find((d) => d.deviceId === a2.deviceId)!
    assert.ok(listed.removedAt !== null)
    for (const g of [team, news]) {
      const m = await bob.client.call("group.members", { group: g.groupId })
      assert.deepEqual(
        m.members.find((x) => x.username === "alice")!.devices.map((d) => d.deviceId),
        [a1.deviceId],
      )
    }
    // Its keys are gone from the directory: a new invitation adds only the device that is left.
    const later = await bob.client.call("group.create", { name: "later" })
    const joined = alice1.client.next("group.joined", (p) => p.groupId === later.groupId, 20_000)
    await bob.client.call("group.invite", { group: "later", user: "alice" })
    await joined
    const lm = await bob.client.call("group.members", { group: later.groupId })
    assert.deepEqual(
      lm.members.find((x) => x.username === "alice")!.devices.map((d) => d.deviceId),
      [a1.deviceId],
    )
    // And the group goes on without it.
    await heard(bob, "just you now", [alice1])
  })

  it("refuses a device whose key changed since it was pinned, and says so", async (t) => {
    const s = await startServer(t)
    const alice = await registered(t, s.url, "alice")
    const bob = await registered(t, s.url, "bob")
    const first = await alice.client.call("group.create", { name: "first" })
    const joined = bob.client.next("group.joined", (p) => p.groupId === first.groupId, 20_000)
    await alice.client.call("group.invite", { group: "first", user: "bob" })
    await joined
    const bobId = await bob.client.call("identity.get")

    // The directory now lists another MLS key for bob's device (a server that lies, or a changed key).
    await sql(s.app.store, "UPDATE devices SET mls_key = ? WHERE id = ?", randomBytes(32), bobId.deviceId)
    await alice.client.call("group.create", { name: "second" })
    const refused = alice.client.next("credential.refused", (p) => p.clientId === bobId.clientId, 20_000)
    await assert.rejects(alice.client.call("group.invite", { group: "second", user: "bob" }), code("forbidden"))
    const r = await refused
    assert.equal(r.username, "bob")
    assert.match(r.reason, /pinned/)
    assert.deepEqual((await alice.client.call("group.members", { group: "second" })).members.length, 1)
    // The group with the pinned key works on.
    const got = bob.client.next("message.received", (p) => p.text === "still fine", 20_000)
    await alice.client.call("message.send", { group: "first", text: "still fine" })
    await got
  })
})
