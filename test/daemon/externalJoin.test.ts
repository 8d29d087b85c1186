/**
 * External joins with real parts (a real server on a ManualClock, real daemons over their sockets, real MLS): a daemon
 * kept offline past retention rejoins with `group.rejoin`, so does one restored from a backup, two rejoining at once
 * do not fork the group, a new device
 * joins its account's groups by itself while the account's other device is stopped, and an external Commit the server
 * was made to take (its roster forged) is refused by the members' own check.
 */
import assert from "node:assert/strict"
import { readFileSync, writeFileSync } from "node:fs"
import { describe, it } from "node:test"
import Database from "better-sqlite3"
import { defaultCapabilities, encodeMlsMessage, generateKeyPackageWithKey, joinGroupExternal } from "ts-mls"
import { decodeMlsMessage } from "ts-mls/message.js"
import { storedGroupState } from "../helpers/groupState.js"
import { fromBase64Url, toBase64Url } from "../../rpc-schema/common.js"
import type { NotificationParams } from "../../rpc-schema/daemon/index.js"
import { groupWith, history, registered } from "../helpers/chat.js"
import { startDaemon, type TestDaemon } from "../helpers/daemon.js"
import { http } from "../helpers/http.js"
import { startServer, type TestServer } from "../helpers/server.js"
import { encodeKp, linkDevice, newUser, testSuite, uploadKeyPackages } from "../helpers/users.js"

const hour = 3600_000

/** The daemon started again, subscribed from its first event, once it reported `name` for the group. */
async function restartUntil<N extends "group.historyLost" | "group.updated">(
  d: TestDaemon,
  name: N,
  p: (x: NotificationParams<N>) => boolean,
): Promise<TestDaemon> {
  const again = await d.restart()
  const seen = again.client.next(name, p, 20_000)
  await again.client.call("events.subscribe", { after: 0 })
  await seen
  return again
}

/** The epoch and epoch authenticator (RFC 9420 §8.7) of the daemon's stored state of a group. */
function epochOf(d: TestDaemon, groupId: string): { epoch: bigint; authenticator: string } {
  const state = storedGroupState(d.dbPath, groupId)
  return { epoch: state.mls.groupContext.epoch, authenticator: toBase64Url(state.mls.keySchedule.epochAuthenticator) }
}

/** `from` sends `text`; resolves once every one of `to` received it. */
async function heard(groupId: string, from: TestDaemon, text: string, to: TestDaemon[]): Promise<void> {
  const got = to.map((d) => d.client.next("message.received", (p) => p.groupId === groupId && p.text === text, 20_000))
  await from.client.call("message.send", { group: groupId, text })
  await Promise.all(got)
}

/**
 * The group with a Commit deleted by retention before each of `offline` fetched it: each is restarted and reports
 * the group out of sync. `alice` stays online. Answers the restarted daemons and the seq of the last entry kept.
 */
async function lostSync(
  s: TestServer,
  alice: TestDaemon,
  groupId: string,
  offline: TestDaemon[],
): Promise<{ restarted: TestDaemon[]; kept: number }> {
  for (const d of offline) assert.equal(await d.stop(), 0)
  await alice.client.call("message.send", { group: groupId, text: "lost 1" })
  await alice.client.call("group.selfUpdate", { group: groupId })
  await alice.client.call("message.send", { group: groupId, text: "lost 2" })
  s.clock.advance(hour + 1)
  const kept = await alice.client.call("message.send", { group: groupId, text: "after the gap" })
  await s.app.delivery.collectGarbage()
  const restarted: TestDaemon[] = []
  for (const d of offline)
    restarted.push(
      await restartUntil(d, "group.historyLost", (p) => p.groupId === groupId && p.status === "out_of_sync"),
    )
  return { restarted, kept: kept.seq! }
}

describe("daemon: external joins", () => {
  it("rejoins a group lost to retention with group.rejoin, says what was missed, and chats again", async (t) => {
    const s = await startServer(t, { deliveryRetentionMs: hour })
    const alice = await registered(t, s.url, "alice")
    const bob = await registered(t, s.url, "bob")
    const carol = await registered(t, s.url, "carol")
    const g = await groupWith(alice, "g", { bob, carol })
    await heard(g.groupId, alice, "before", [bob, carol])
    const bobSeq = (await bob.client.call("group.list")).groups.find((x) => x.groupId === g.groupId)!.lastSeq

    const {
      restarted: [bob2],
      kept,
    } = await lostSync(s, alice, g.groupId, [bob])
    // Refused while in sync; then rejoined.
    await assert.rejects(alice.client.call("group.rejoin", { group: "g" }), (e: any) => e.appCode === "conflict")
    const lost = bob2!.client.next("group.historyLost", (p) => p.groupId === g.groupId && p.rejoined, 20_000)
    const others = [alice, carol].map((d) =>
      d.client.next("group.updated", (p) => p.groupId === g.groupId && p.reason === "commit" && p.by === "bob", 20_000),
    )
    const rejoined = await bob2!.client.call("group.rejoin", { group: "g" })
    assert.equal(rejoined.status, "active")
    assert.equal(rejoined.epoch, 4)
    const event = await lost
    assert.deepEqual(
      { ...event, eventId: 0 },
      {
        eventId: 0,
        groupId: g.groupId,
        group: "g",
        after: bobSeq,
        prunedThrough: rejoined.lastSeq - 1,
        lost: rejoined.lastSeq - 1 - bobSeq,
        canContinue: true,
        epoch: 4,
        groupEpoch: 4,
        status: "active",
        rejoined: true,
      },
    )
    assert.ok(rejoined.lastSeq > kept)
    // The others applied bob's external Commit: same roster (bob's old leaf gone, his new one in), same epoch.
    for (const u of await Promise.all(others)) {
      assert.deepEqual([...u.members].sort(), ["alice", "bob", "carol"])
      assert.deepEqual(u.added, [])
      assert.deepEqual(u.removed, [])
    }
    const ea = epochOf(alice, g.groupId)
    assert.equal(ea.epoch, 4n)
    for (const d of [bob2!, carol]) assert.deepEqual(epochOf(d, g.groupId), ea)

    await heard(g.groupId, bob2!, "back again", [alice, carol])
    await heard(g.groupId, alice, "welcome back", [bob2!, carol])
    assert.deepEqual(await history(bob2!.client, "g"), ["before", "back again", "welcome back"])
    const m = await alice.client.call("group.members", { group: g.groupId })
    assert.equal(m.members.find((x) => x.username === "bob")!.devices.length, 1)
  })

  it("rejoins after a restored backup left it unable to apply its own Commit", async (t) => {
    const s = await startServer(t)
    const alice = await registered(t, s.url, "alice")
    const bob = await registered(t, s.url, "bob")
    const g = await groupWith(alice, "g", { bob })
    await heard(g.groupId, alice, "before the backup", [bob])
    // bob's backup (the daemon stopped, so its database file is whole), then a Commit of his that the backup lacks.
    assert.equal(await bob.stop(), 0)
    const backup = readFileSync(bob.dbPath)
    const bob2 = await bob.restart()
    await bob2.client.call("events.subscribe", { after: 0 })
    const rotated = await bob2.client.call("group.selfUpdate", { group: g.groupId })
    await heard(g.groupId, alice, "after the rotation", [bob2])
    assert.equal(await bob2.stop(), 0)
    writeFileSync(bob.dbPath, backup)

    // The restored state cannot apply bob's own Commit from the log: out of sync, then rejoined.
    const bob3 = await restartUntil(bob2, "group.updated", (p) => p.groupId === g.groupId && p.reason === "outOfSync")
    const lost = bob3.client.next("group.historyLost", (p) => p.groupId === g.groupId && p.rejoined, 20_000)
    const rejoined = await bob3.client.call("group.rejoin", { group: g.groupId })
    assert.equal(rejoined.epoch, rotated.epoch + 1)
    const event = await lost
    // Lost: bob's Commit (which the restored state could not apply) and what followed it, up to the rejoin.
    assert.equal(event.prunedThrough, rejoined.lastSeq - 1)
    assert.ok(event.lost >= 2, JSON.stringify(event))
    await heard(g.groupId, bob3, "restored", [alice])
    await heard(g.groupId, alice, "welcome back", [bob3])
    assert.deepEqual(epochOf(bob3, g.groupId), epochOf(alice, g.groupId))
    assert.deepEqual(await history(bob3.client, "g"), ["before the backup", "restored", "welcome back"])
  })

  it("two members rejoining at once: one wins, the other tries again at the next epoch, no fork", async (t) => {
    const s = await startServer(t, { deliveryRetentionMs: hour })
    const alice = await registered(t, s.url, "alice")
    const bob = await registered(t, s.url, "bob")
    const carol = await registered(t, s.url, "carol")
    const g = await groupWith(alice, "g", { bob, carol })
    const {
      restarted: [bob2, carol2],
    } = await lostSync(s, alice, g.groupId, [bob, carol])

    // Both external Commits are made on the same GroupInfo: the first to reach the server is held until the second
    // arrives too (the server's code runs unchanged; only their order is fixed), so exactly one loses the epoch race.
    const delivery = s.app.delivery
    const original = delivery.externalCommit.bind(delivery)
    let arrived = 0
    let release: () => void = () => undefined
    const second = new Promise<void>((resolve) => (release = resolve))
    delivery.externalCommit = async (...args) => {
      arrived++
      if (arrived === 1) {
        // Bounded: should the second never come, the first goes on (and the assertions below fail).
        const bound = setTimeout(release, 15_000)
        await second
        clearTimeout(bound)
      }
      if (arrived === 2) release()
      return original(...args)
    }
    const [b, c] = await Promise.all([bob2!, carol2!].map((d) => d.client.call("group.rejoin", { group: g.groupId })))
    // Three posts: both at epoch 4, of which the held one lost; the loser's second, made on epoch 5's GroupInfo.
    assert.equal(arrived, 3)
    assert.deepEqual([b!.epoch, c!.epoch].sort(), [4, 5])

    // alice applies both; every member ends at epoch 5 with the same epoch authenticator.
    await heard(g.groupId, alice, "all here?", [bob2!, carol2!])
    const ea = epochOf(alice, g.groupId)
    assert.equal(ea.epoch, 5n)
    for (const d of [bob2!, carol2!]) assert.deepEqual(epochOf(d, g.groupId), ea)
    await heard(g.groupId, carol2!, "yes", [alice, bob2!])
  })

  it("a new device joins its account's groups by itself while the other device is stopped", async (t) => {
    const s = await startServer(t)
    const alice1 = await registered(t, s.url, "alice")
    const bob = await registered(t, s.url, "bob")
    const team = await groupWith(alice1, "team", { bob })
    const news = await groupWith(bob, "news", { alice: alice1 })
    const { code } = await alice1.client.call("identity.linkCode")
    assert.equal(await alice1.stop(), 0)

    const alice2 = await startDaemon(t, { server: s.url, profile: "alice-laptop" })
    const joined = [team, news].map((g) => alice2.client.next("group.joined", (p) => p.groupId === g.groupId, 30_000))
    const bobSees = [team, news].map((g) =>
      bob.client.next("group.updated", (p) => p.groupId === g.groupId && p.addedDevices.length === 1, 30_000),
    )
    const newDevice = bob.client.next("device.added", (p) => p.username === "alice", 30_000)
    await alice2.client.call("events.subscribe", { after: 0 })
    const me = await alice2.client.call("identity.link", { code })
    for (const j of await Promise.all(joined)) assert.deepEqual([...j.members].sort(), ["alice", "bob"])
    for (const u of await Promise.all(bobSees)) {
      assert.equal(u.by, "alice")
      assert.deepEqual(
        u.addedDevices.map((d) => d.deviceId),
        [me.deviceId],
      )
    }
    assert.equal((await newDevice).deviceId, me.deviceId)

    for (const g of [team, news]) {
      await heard(g.groupId, alice2, `laptop in ${g.groupId}`, [bob])
      await heard(g.groupId, bob, `hi laptop ${g.groupId}`, [alice2])
      assert.deepEqual(epochOf(alice2, g.groupId), epochOf(bob, g.groupId))
    }
  })

  it("refuses an external Commit of a stranger the server was made to take, and stops following that epoch", async (t) => {
    const s = await startServer(t)
    const alice = await registered(t, s.url, "alice")
    const bob = await registered(t, s.url, "bob")
    const g = await groupWith(alice, "g", { bob })
    // mallory has an account and a bound MLS key, and no device in the group.
    const mallory = await newUser(s.url, "mallory")
    const cs = await testSuite()
    const now = s.clock.now()
    const kp = await generateKeyPackageWithKey(
      { credentialType: "basic", identity: new TextEncoder().encode(mallory.clientId) },
      defaultCapabilities(),
      { notBefore: BigInt(Math.floor(now / 1000) - 3600), notAfter: BigInt(Math.floor(now / 1000) + 86400) },
      [],
      { signKey: mallory.seed, publicKey: mallory.publicKey },
      cs,
    )
    assert.equal((await uploadKeyPackages(s.url, mallory, [encodeKp(kp.publicPackage)])).status, 200)
    const honest = await http(s.url, "GET", `/v1/groups/${g.groupId}/group-info`, { token: mallory.token })
    assert.equal(honest.body.error.code, "not_member")

    // A server that lies: its roster says another device of mallory's is in the group, so it serves her the
    // GroupInfo and takes her external Commit. The members' own check is what stops her.
    const phone = await linkDevice(s.url, mallory)
    const db = new Database(s.dbPath)
    db.prepare("INSERT INTO group_members (group_id, device, joined_seq, removed_seq) VALUES (?, ?, 0, NULL)").run(
      g.groupId,
      phone.deviceId,
    )
    db.close()
    const info = await http(s.url, "GET", `/v1/groups/${g.groupId}/group-info`, { token: mallory.token })
    assert.equal(info.status, 200)
    const m = decodeMlsMessage(fromBase64Url(info.body.groupInfo), 0)![0]
    assert.equal(m.wireformat, "mls_group_info")
    const groupInfo = (m as { groupInfo: Parameters<typeof joinGroupExternal>[0] }).groupInfo
    const joined = await joinGroupExternal(groupInfo, kp.publicPackage, kp.privatePackage, false, cs)
    const refused = [alice, bob].map((d) =>
      d.client.next("group.updated", (p) => p.groupId === g.groupId && p.reason === "outOfSync", 20_000),
    )
    const posted = await http(s.url, "POST", `/v1/groups/${g.groupId}/external-commits`, {
      token: mallory.token,
      json: {
        commit: toBase64Url(
          encodeMlsMessage({ version: "mls10", wireformat: "mls_public_message", publicMessage: joined.publicMessage }),
        ),
      },
    })
    assert.equal(posted.status, 201, JSON.stringify(posted.body))
    for (const u of await Promise.all(refused)) assert.deepEqual([...u.members].sort(), ["alice", "bob"])
    for (const d of [alice, bob]) {
      const listed = (await d.client.call("group.list")).groups.find((x) => x.groupId === g.groupId)!
      assert.equal(listed.status, "out_of_sync")
      assert.equal(listed.epoch, 1)
      assert.match(d.stderr(), /external Commit of [^ ]+ refused: the joiner's account has no device in the group/)
    }
  })
})
