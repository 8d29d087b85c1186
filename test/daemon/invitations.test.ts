/**
 * Invitation consent (`invites = ask`) with a real server, real daemons and real MLS: a Welcome waits as a pending
 * invitation, survives a restart, is joined by group.accept (the group's log read from the Welcome on) or dropped by
 * group.decline (its private init key deleted, nothing sent: the inviter keeps a silent member).
 */
import assert from "node:assert/strict"
import { describe, it } from "node:test"
import { startDaemon, type TestDaemon } from "../helpers/daemon.js"
import { privateInitKeys, secretsInFile } from "../helpers/pool.js"
import { startServer, type TestServer } from "../helpers/server.js"

const day = 24 * 3600_000
const code = (c: string) => (e: any) => e.appCode === c

async function registered(t: any, s: TestServer, name: string, args: string[] = []): Promise<TestDaemon> {
  const d = await startDaemon(t, { server: s.url, profile: name, args })
  await d.client.call("events.subscribe", { after: 0 })
  await d.client.call("identity.register", { username: name })
  await d.client.call("pool.refresh")
  return d
}

const texts = (r: { messages: { sender: string; text: string }[] }) => r.messages.map((m) => `${m.sender}: ${m.text}`)

describe("invitation consent", () => {
  it("ask: pending across a restart, accept joins, decline drops the Welcome and its key", async (t) => {
    const s = await startServer(t)
    const alice = await registered(t, s, "alice")
    const bob0 = await registered(t, s, "bob", ["--invites", "ask"])
    assert.deepEqual(await bob0.client.call("settings.get"), { invites: "ask" })
    assert.deepEqual(await alice.client.call("settings.get"), { invites: "auto" }, "auto is the default")
    const bobRefs = (await bob0.client.call("pool.list")).keys.map((k) => k.ref)
    const bobSecrets = privateInitKeys(bob0.dbPath, bobRefs)

    const team = await alice.client.call("group.create", { name: "team" })
    const received = bob0.client.next("invite.received", (p) => p.groupId === team.groupId, 20_000)
    await alice.client.call("group.invite", { group: "team", user: "bob" })
    const inv = await received
    assert.equal(inv.name, "team")
    assert.equal(inv.inviter, "alice")
    assert.deepEqual(inv.members, ["alice", "bob"])
    assert.equal(inv.epoch, 1)
    assert.deepEqual((await bob0.client.call("group.list")).groups, [], "bob is not in the group")
    const listed = await bob0.client.call("group.invites")
    assert.deepEqual(
      listed.invitations.map((i) => [i.groupId, i.name, i.inviter, i.members]),
      [[team.groupId, "team", "alice", ["alice", "bob"]]],
    )
    assert.equal((await bob0.client.call("pool.list", { state: "consumed" })).keys.length, 0, "no key consumed yet")

    // Sent while bob's invitation is pending: read by group.accept's catch-up.
    await alice.client.call("message.send", { group: "team", text: "are you coming?" })

    // The setting and the invitation survive a crash and a restart without the flag.
    await bob0.stop("SIGKILL")
    const bob = await startDaemon(t, { profile: "bob", dataDir: bob0.dataDir, socketPath: bob0.socketPath })
    await bob.client.call("events.subscribe")
    assert.deepEqual(await bob.client.call("settings.get"), { invites: "ask" })
    assert.deepEqual(
      (await bob.client.call("group.invites")).invitations.map((i) => [i.groupId, i.name]),
      [[team.groupId, "team"]],
    )
    assert.deepEqual((await bob.client.call("group.list")).groups, [])

    const joined = bob.client.next("group.joined", (p) => p.groupId === team.groupId)
    const accepted = await bob.client.call("group.accept", { groupId: team.groupId })
    assert.equal(accepted.name, "team")
    assert.deepEqual(accepted.members, ["alice", "bob"])
    assert.equal(accepted.status, "active")
    assert.equal((await joined).by, "alice")
    assert.deepEqual((await bob.client.call("group.invites")).invitations, [])
    assert.deepEqual(texts(await bob.client.call("message.list", { group: "team" })), ["alice: are you coming?"])
    await assert.rejects(bob.client.call("group.accept", { groupId: team.groupId }), code("not_found"))

    const got = alice.client.next("message.received", (p) => p.text === "here")
    await bob.client.call("message.send", { group: "team", text: "here" })
    assert.equal((await got).sender, "bob")
    const back = bob.client.next("message.received", (p) => p.text === "welcome")
    await alice.client.call("message.send", { group: "team", text: "welcome" })
    await back

    // A second invitation, declined.
    const side = await alice.client.call("group.create", { name: "side" })
    const second = bob.client.next("invite.received", (p) => p.groupId === side.groupId, 20_000)
    await alice.client.call("group.invite", { group: "side", user: "bob" })
    await second
    await assert.rejects(bob.client.call("group.decline", { groupId: "nope" }), code("not_found"))
    assert.deepEqual(await bob.client.call("group.decline", { groupId: side.groupId }), { groupId: side.groupId })
    assert.deepEqual((await bob.client.call("group.invites")).invitations, [])
    assert.deepEqual(
      (await bob.client.call("group.list")).groups.map((g) => g.name),
      ["team"],
    )
    await assert.rejects(bob.client.call("group.accept", { groupId: side.groupId }), code("not_found"))
    // Both keys the Welcomes were made for are consumed; their private parts are gone from the file.
    const consumed = (await bob.client.call("pool.list", { state: "consumed" })).keys
    assert.equal(consumed.length, 2)
    assert.ok(consumed.every((k) => !k.hasPrivateKey))
    assert.equal(
      secretsInFile(
        bob.dbPath,
        consumed.map((k) => bobSecrets.get(k.ref)!),
      ),
      0,
    )
    assert.equal(secretsInFile(bob.dbPath, bobSecrets.values()), bobRefs.length - 2)
    // Nothing was sent: alice keeps bob as a member who never speaks, and her group works on.
    assert.deepEqual(
      (await alice.client.call("group.members", { group: "side" })).members.map((m) => m.username),
      ["alice", "bob"],
    )
    await alice.client.call("message.send", { group: "side", text: "anyone?" })

    // Back to auto over RPC: the next Welcome is joined at once.
    assert.deepEqual(await bob.client.call("settings.set", { invites: "auto" }), { invites: "auto" })
    const third = await alice.client.call("group.create", { name: "third" })
    const joinedAtOnce = bob.client.next("group.joined", (p) => p.groupId === third.groupId, 20_000)
    await alice.client.call("group.invite", { group: "third", user: "bob" })
    await joinedAtOnce
    assert.deepEqual((await bob.client.call("group.invites")).invitations, [])
  })

  it("the pool keeps the key of a pending invitation past its lifetime and grace; accept then consumes it", async (t) => {
    const s = await startServer(t)
    const alice = await registered(t, s, "alice")
    const bob = await startDaemon(t, { server: s.url, profile: "bob", args: ["--invites", "ask"] })
    await bob.client.call("debug.setClock", { now: s.clock.now() })
    await bob.client.call("events.subscribe", { after: 0 })
    await bob.client.call("identity.register", { username: "bob" })
    await bob.client.call("pool.refresh")
    const old = (await bob.client.call("pool.list")).keys.map((k) => k.ref)
    const secrets = privateInitKeys(bob.dbPath, old)

    const g = await alice.client.call("group.create", { name: "later" })
    const received = bob.client.next("invite.received", (p) => p.groupId === g.groupId, 20_000)
    await alice.client.call("group.invite", { group: "later", user: "bob" })
    await received

    // Past every old key's not_after plus the grace period: all purged but the one the invitation holds.
    s.clock.advance(18 * day)
    await bob.client.call("debug.setClock", { now: s.clock.now() })
    assert.equal((await bob.client.call("pool.refresh")).lastError, null)
    const left = (await bob.client.call("pool.list")).keys.filter((k) => old.includes(k.ref))
    assert.equal(left.length, 1, "only the invitation's key is left of the old ones")
    assert.equal(left[0]!.hasPrivateKey, true)
    assert.equal(secretsInFile(bob.dbPath, secrets.values()), 1)

    const accepted = await bob.client.call("group.accept", { groupId: g.groupId })
    assert.deepEqual(accepted.members, ["alice", "bob"])
    assert.equal(secretsInFile(bob.dbPath, secrets.values()), 0, "consumed: its private init key is gone")
    const got = alice.client.next("message.received", (p) => p.text === "sorry for the wait")
    await bob.client.call("message.send", { group: "later", text: "sorry for the wait" })
    await got
  })

  it("a removal before the invitation is accepted drops it (invite.failed, code removed) and its key", async (t) => {
    const s = await startServer(t)
    const alice = await registered(t, s, "alice")
    const bob = await registered(t, s, "bob", ["--invites", "ask"])
    const g = await alice.client.call("group.create", { name: "brief" })
    const received = bob.client.next("invite.received", (p) => p.groupId === g.groupId, 20_000)
    await alice.client.call("group.invite", { group: "brief", user: "bob" })
    await received
    const dropped = bob.client.next("invite.failed", (p) => p.groupId === g.groupId, 20_000)
    await alice.client.call("group.remove", { group: "brief", user: "bob" })
    const f = await dropped
    assert.equal(f.code, "removed")
    assert.equal(f.by, "alice")
    assert.deepEqual((await bob.client.call("group.invites")).invitations, [])
    await assert.rejects(bob.client.call("group.accept", { groupId: g.groupId }), code("not_found"))
    const consumed = (await bob.client.call("pool.list", { state: "consumed" })).keys
    assert.equal(consumed.length, 1)
    assert.equal(consumed[0]!.hasPrivateKey, false)
  })

  it("refuses a bad --invites value and bad settings.set params", async (t) => {
    const d = await startDaemon(t, { profile: "carol" })
    await assert.rejects(d.client.call("settings.set", { invites: "maybe" } as any), (e: any) => e.code === -32602)
    assert.deepEqual(await d.client.call("settings.get"), { invites: "auto" }, "unchanged")
    await d.stop()
    const bad = await startDaemon(t, { profile: "carol", dataDir: d.dataDir, args: ["--invites", "never"] }).then(
      () => undefined,
      (err: Error) => err,
    )
    assert.match(String(bad), /--invites must be auto or ask/)
  })
})
