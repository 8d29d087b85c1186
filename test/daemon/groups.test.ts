import assert from "node:assert/strict"
import { describe, it } from "node:test"
import { startDaemon, type TestDaemon } from "../helpers/daemon.js"
import { groupWith } from "../helpers/chat.js"
import { startServer, type TestServer } from "../helpers/server.js"
import { newUser } from "../helpers/users.js"
import { privateInitKeys, secretsInFile } from "../helpers/pool.js"
import { createGroup, postCommit, reserve } from "../helpers/groups.js"
import { fakeCommit } from "../helpers/mls.js"
import { randomBytes } from "node:crypto"
import Database from "better-sqlite3"
import { encodeMlsMessage } from "ts-mls/message.js"
import { fromBase64Url, toBase64Url } from "../../rpc-schema/common.js"

/** A Welcome-shaped MLSMessage for these KeyPackageRefs, with garbage secrets, base64url. */
function welcomeFor(refs: string[]): string {
  return toBase64Url(
    encodeMlsMessage({
      version: "mls10",
      wireformat: "mls_welcome",
      welcome: {
        cipherSuite: "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519",
        secrets: refs.map((r) => ({
          newMember: fromBase64Url(r),
          encryptedGroupSecrets: { kemOutput: randomBytes(32), ciphertext: randomBytes(64) },
        })),
        encryptedGroupInfo: randomBytes(64),
      },
    }),
  )
}

const code = (c: string) => (e: any) => e.appCode === c

/** A registered daemon subscribed to every event, with its pool on the server. */
async function registered(t: any, s: TestServer, name: string): Promise<TestDaemon> {
  const d = await startDaemon(t, { server: s.url, profile: name })
  await d.client.call("events.subscribe", { after: 0 })
  await d.client.call("identity.register", { username: name })
  await d.client.call("pool.refresh")
  return d
}

/** Several registered daemons at once, in the order of `names`. */
async function users(t: any, s: TestServer, ...names: string[]): Promise<TestDaemon[]> {
  return Promise.all(names.map((n) => registered(t, s, n)))
}

const texts = (r: { messages: { sender: string; text: string }[] }) => r.messages.map((m) => `${m.sender}: ${m.text}`)

describe("groups", () => {
  it("alice invites bob while his daemon is down; bob joins when it starts; messages flow both ways", async (t) => {
    const s = await startServer(t)
    const alice = await registered(t, s, "alice")
    const bob0 = await registered(t, s, "bob")
    const bobRefs = (await bob0.client.call("pool.list")).keys.map((k) => k.ref)
    await bob0.stop()
    const bobSecrets = privateInitKeys(bob0.dbPath, bobRefs)
    assert.equal(secretsInFile(bob0.dbPath, bobSecrets.values()), bobRefs.length)

    const created = await alice.client.call("group.create", { name: "team" })
    assert.equal(created.name, "team")
    assert.deepEqual(created.members, ["alice"])
    const invited = await alice.client.call("group.invite", { group: "team", user: "bob" })
    assert.deepEqual(invited.members, ["alice", "bob"])
    assert.equal(invited.epoch, 1)
    await alice.client.call("message.send", { group: "team", text: "welcome, bob" })

    const bob = await bob0.restart()
    const joined = bob.client.next("group.joined", (p) => p.name === "team", 20_000)
    const early = bob.client.next("message.received", () => true, 20_000).catch(() => undefined)
    await bob.client.call("events.subscribe", { after: 0 })
    const j = await joined
    assert.deepEqual(j.members, ["alice", "bob"])
    assert.equal(j.by, "alice")
    assert.equal(j.groupId, created.groupId)
    // alice's message was sent at the epoch bob joined at: he can read it.
    assert.equal((await early)?.text, "welcome, bob")

    const got = alice.client.next("message.received", (p) => p.text === "hi alice")
    const sent = await bob.client.call("message.send", { group: "team", text: "hi alice" })
    assert.equal(sent.own, true)
    const r = await got
    assert.equal(r.sender, "bob")
    assert.equal(r.group, "team")

    const back = bob.client.next("message.received", (p) => p.text === "good to see you")
    await alice.client.call("message.send", { group: "team", text: "good to see you" })
    await back

    const want = ["alice: welcome, bob", "bob: hi alice", "alice: good to see you"]
    assert.deepEqual(texts(await alice.client.call("message.list", { group: "team" })), want)
    assert.deepEqual(texts(await bob.client.call("message.list", { group: "team" })), want)
    const page = await bob.client.call("message.list", { group: created.groupId, limit: 2 })
    assert.equal(page.more, true)
    assert.deepEqual(texts(page), want.slice(1))

    const bobGroups = await bob.client.call("group.list")
    assert.deepEqual(
      bobGroups.groups.map((g) => [g.name, g.members, g.status]),
      [["team", ["alice", "bob"], "active"]],
    )
    const m = await bob.client.call("group.members", { group: "team" })
    assert.deepEqual(
      m.members.map((x) => [x.username, x.self]),
      [
        ["alice", false],
        ["bob", true],
      ],
    )
    // bob's key was consumed and its private part deleted.
    const consumed = (await bob.client.call("pool.list", { state: "consumed" })).keys
    assert.equal(consumed.length, 1)
    assert.equal(consumed[0]!.hasPrivateKey, false)
    assert.equal(
      secretsInFile(bob.dbPath, [bobSecrets.get(consumed[0]!.ref)!]),
      0,
      "its init key is gone from the file",
    )
    assert.equal(secretsInFile(bob.dbPath, bobSecrets.values()), bobRefs.length - 1)

    // The history survives a restart, and nothing is applied twice.
    await bob.stop()
    const bob2 = await bob.restart()
    await bob2.client.call("events.subscribe")
    const again = alice.client.next("message.received", (p) => p.text === "still here")
    await bob2.client.call("message.send", { group: "team", text: "still here" })
    await again
    assert.deepEqual(texts(await bob2.client.call("message.list", { group: "team" })), [...want, "bob: still here"])
  })

  it("answers clear errors: unknown group, exhausted pool, unknown user, duplicate member", async (t) => {
    const s = await startServer(t)
    const alice = await registered(t, s, "alice")
    await assert.rejects(alice.client.call("message.send", { group: "nope", text: "x" }), code("not_found"))
    await alice.client.call("group.create", { name: "solo" })
    for (const text of [" ", "\n\t  \r\n"]) {
      await assert.rejects(alice.client.call("message.send", { group: "solo", text }), code("empty_message"))
    }
    assert.deepEqual((await alice.client.call("message.list", { group: "solo" })).queued, [], "nothing queued")
    await assert.rejects(alice.client.call("group.create", { name: "solo" }), code("conflict"))
    await assert.rejects(alice.client.call("group.invite", { group: "solo", user: "nobody" }), code("unknown_user"))
    await assert.rejects(alice.client.call("group.invite", { group: "solo", user: "alice" }), code("conflict"))
    // Registered, but never uploaded a KeyPackage.
    await newUser(s.url, "carol")
    await assert.rejects(alice.client.call("group.invite", { group: "solo", user: "carol" }), (e: any) => {
      assert.equal(e.appCode, "pool_exhausted")
      assert.match(e.message, /carol has no KeyPackage/)
      return true
    })
    assert.deepEqual((await alice.client.call("group.members", { group: "solo" })).members.length, 1)
  })

  it("removes a member, and commits another member's leave", async (t) => {
    const s = await startServer(t)
    const [alice, bob, carol] = (await users(t, s, "alice", "bob", "carol")) as [TestDaemon, TestDaemon, TestDaemon]
    // bob sees carol arrive through the stream (maybe after carol's own Welcome is processed).
    const bobSeesCarol = bob.client.next("group.updated", (p) => p.added.includes("carol"))
    const g = await groupWith(alice, "club", { bob, carol })
    await bobSeesCarol
    assert.deepEqual((await bob.client.call("group.members", { group: "club" })).members.length, 3)

    const carolOut = carol.client.next("group.updated", (p) => p.reason === "removed")
    const bobSees = bob.client.next("group.updated", (p) => p.removed.includes("carol"))
    const after = await alice.client.call("group.remove", { group: "club", user: "carol" })
    assert.deepEqual(after.members, ["alice", "bob"])
    await carolOut
    assert.deepEqual((await bobSees).members, ["alice", "bob"])
    await assert.rejects(carol.client.call("message.send", { group: "club", text: "still?" }), code("not_member"))
    assert.equal((await carol.client.call("group.list")).groups[0]!.status, "removed")
    // Invited again, carol is back, her history kept.
    const rejoined = carol.client.next("group.joined", (p) => p.groupId === g.groupId)
    await alice.client.call("group.invite", { group: "club", user: "carol" })
    assert.deepEqual((await rejoined).members, ["alice", "bob", "carol"])
    const hello = carol.client.next("message.received", (p) => p.text === "welcome back")
    await alice.client.call("message.send", { group: "club", text: "welcome back" })
    await hello
    await alice.client.call("group.remove", { group: "club", user: "carol" })

    // bob leaves: alice (the lowest leaf) commits his proposal.
    const bobOut = bob.client.next("group.updated", (p) => p.reason === "removed")
    const aliceSees = alice.client.next("group.updated", (p) => p.removed.includes("bob"))
    const left = await bob.client.call("group.leave", { group: "club" })
    assert.equal(left.leaving, true, "group.leave answers the state after the proposal: leaving")
    await bobOut
    assert.deepEqual((await aliceSees).members, ["alice"])
    const bobsView = (await bob.client.call("group.list")).groups.find((x) => x.groupId === g.groupId)
    assert.equal(bobsView?.status, "removed")
    assert.equal(bobsView.leaving, false, "left: removed, no longer leaving")
    assert.deepEqual(
      (await alice.client.call("group.members", { group: "club" })).members.map((m) => m.username),
      ["alice"],
    )
    await alice.client.call("message.send", { group: "club", text: "alone now" })
  })

  it("two members invite at once: one wins the epoch, the other catches up and retries", async (t) => {
    const s = await startServer(t)
    const [alice, bob, carol, dave] = (await users(t, s, "alice", "bob", "carol", "dave")) as [
      TestDaemon,
      TestDaemon,
      TestDaemon,
      TestDaemon,
    ]
    const g = await alice.client.call("group.create", { name: "race" })
    const bobJoined = bob.client.next("group.joined", (p) => p.groupId === g.groupId)
    await alice.client.call("group.invite", { group: "race", user: "bob" })
    await bobJoined
    const joins = [carol, dave].map((d) => d.client.next("group.joined", (p) => p.groupId === g.groupId, 20_000))
    const [a, b] = await Promise.all([
      alice.client.call("group.invite", { group: "race", user: "carol" }),
      bob.client.call("group.invite", { group: "race", user: "dave" }),
    ])
    assert.deepEqual([a.epoch, b.epoch].sort(), [2, 3])
    await Promise.all(joins)
    // Everyone converges on the same four members at epoch 3, and a message reaches all.
    const heard = [alice, bob, carol].map((d) => d.client.next("message.received", (p) => p.text === "hello all"))
    await dave.client.call("message.send", { group: "race", text: "hello all" })
    await Promise.all(heard)
    for (const d of [alice, bob, carol, dave]) {
      const m = await d.client.call("group.members", { group: "race" })
      assert.equal(m.epoch, 3)
      assert.deepEqual(m.members.map((x) => x.username).sort(), ["alice", "bob", "carol", "dave"])
    }
  })

  it("a Welcome for an unknown or used KeyPackage is reported as invite.failed; the daemon goes on", async (t) => {
    const s = await startServer(t)
    const [alice, bob] = (await users(t, s, "alice", "bob")) as [TestDaemon, TestDaemon]
    const mallory = await newUser(s.url, "mallory")

    // A Welcome naming no key of bob's.
    const g1 = await createGroup(s.url, mallory)
    const unknown = bob.client.next("invite.failed", (p) => p.groupId === g1.id)
    const r1 = await postCommit(s.url, mallory, g1, {
      keyPackages: [await reserve(s.url, mallory, "bob")],
      welcome: welcomeFor([toBase64Url(randomBytes(32))]),
    })
    assert.equal(r1.status, 201)
    const u = await unknown
    assert.equal(u.code, "unknown_keypackage")
    assert.equal(u.by, "mallory")
    // Junk on the group's log does not hurt either.
    await postCommit(s.url, mallory, g1, { commit: fakeCommit(g1.bytes, g1.epoch) })

    // A real invite still works.
    const g = await alice.client.call("group.create", { name: "real" })
    const joined = bob.client.next("group.joined", (p) => p.groupId === g.groupId)
    await alice.client.call("group.invite", { group: "real", user: "bob" })
    await joined
    const used = (await bob.client.call("pool.list", { state: "consumed" })).keys[0]!.ref

    // A Welcome naming the key bob used already.
    const g2 = await createGroup(s.url, mallory)
    const consumed = bob.client.next("invite.failed", (p) => p.groupId === g2.id)
    await postCommit(s.url, mallory, g2, {
      keyPackages: [await reserve(s.url, mallory, "bob")],
      welcome: welcomeFor([used]),
    })
    assert.equal((await consumed).code, "keypackage_consumed")
    assert.deepEqual(
      (await bob.client.call("group.list")).groups.map((x) => x.name),
      ["real"],
    )
    // Both failed Welcomes were acknowledged: a restart does not report them again. Inbox items are handled in
    // order, so once a Welcome sent after the restart is joined, an unacknowledged one would have been reported.
    await bob.stop()
    const bob2 = await bob.restart()
    let again = 0
    bob2.client.on("invite.failed", () => again++)
    await bob2.client.call("events.subscribe")
    const st = await bob2.client.call("daemon.status")
    assert.equal(st.username, "bob")
    const later = await alice.client.call("group.create", { name: "later" })
    const joinedLater = bob2.client.next("group.joined", (p) => p.groupId === later.groupId, 20_000)
    await alice.client.call("group.invite", { group: "later", user: "bob" })
    await joinedLater
    assert.equal(again, 0)
  })

  it("a signature key that differs from the pinned one is refused and reported", async (t) => {
    const s = await startServer(t)
    const [alice, bob] = (await users(t, s, "alice", "bob")) as [TestDaemon, TestDaemon]
    const bobDevice = (await bob.client.call("identity.get")).clientId!
    await alice.client.call("group.create", { name: "pinned" })
    // alice pinned some other key for bob's device earlier (as if the directory had since changed its key).
    await alice.stop()
    const db = new Database(alice.dbPath)
    db.prepare(
      "INSERT INTO device_pins (identity, handle, client_id, signature_key, pinned_at) VALUES (?, ?, ?, ?, ?)",
    ).run(bobDevice, "bob", bobDevice, randomBytes(32), Date.now())
    db.close()
    const a2 = await alice.restart()
    const refused = a2.client.next("credential.refused", (p) => p.username === "bob")
    await a2.client.call("events.subscribe")
    await assert.rejects(a2.client.call("group.invite", { group: "pinned", user: "bob" }), code("forbidden"))
    assert.match((await refused).reason, /pinned/)
    assert.deepEqual((await a2.client.call("group.list")).groups[0]!.members, ["alice"])
  })

  it("a leave whose committer is offline is committed by the next member who sends; the committer catches up", async (t) => {
    const s = await startServer(t)
    const [alice, bob, carol] = (await users(t, s, "alice", "bob", "carol")) as [TestDaemon, TestDaemon, TestDaemon]
    await groupWith(alice, "club", { bob, carol })
    await alice.stop()

    const bobOut = bob.client.next("group.updated", (p) => p.reason === "removed")
    const proposed = carol.client.next("group.updated", (p) => p.reason === "leaveProposed" && p.by === "bob")
    await bob.client.call("group.leave", { group: "club" })
    // Once bob's proposal reached carol, she sends: her daemon commits the leave first.
    await proposed
    const sent = await carol.client.call("message.send", { group: "club", text: "bye bob" })
    assert.equal(sent.own, true)
    await bobOut
    assert.deepEqual(
      (await carol.client.call("group.members", { group: "club" })).members.map((m) => m.username),
      ["alice", "carol"],
    )

    const a2 = await alice.restart()
    const heard = a2.client.next("message.received", (p) => p.text === "bye bob", 20_000)
    await a2.client.call("events.subscribe", { after: 0 })
    await heard
    const m = await a2.client.call("group.members", { group: "club" })
    assert.deepEqual(
      m.members.map((x) => x.username),
      ["alice", "carol"],
    )
    const back = carol.client.next("message.received", (p) => p.text === "back")
    await a2.client.call("message.send", { group: "club", text: "back" })
    await back
  })

  it("a daemon killed while messages arrive loses none and stores none twice", async (t) => {
    const s = await startServer(t)
    const [alice, bob] = (await users(t, s, "alice", "bob")) as [TestDaemon, TestDaemon]
    const g = await alice.client.call("group.create", { name: "burst" })
    const joined = bob.client.next("group.joined", (p) => p.groupId === g.groupId)
    await alice.client.call("group.invite", { group: "burst", user: "bob" })
    await joined
    const n = 30
    const sending = (async () => {
      for (let i = 0; i < n; i++) await alice.client.call("message.send", { group: "burst", text: `m${i}` })
    })()
    await bob.client.next("message.received", (p) => p.text === "m5")
    await bob.stop("SIGKILL")
    await sending
    const bob2 = await bob.restart()
    const last = bob2.client.next("message.received", (p) => p.text === `m${n - 1}`, 20_000)
    await bob2.client.call("events.subscribe", { after: 0 })
    await last
    const history = await bob2.client.call("message.list", { group: "burst", limit: 500 })
    assert.deepEqual(
      history.messages.map((m) => m.text),
      Array.from({ length: n }, (_, i) => `m${i}`),
    )
  })
})
