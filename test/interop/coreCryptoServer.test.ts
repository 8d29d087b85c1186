// Issue 16's interop acceptance: a core-crypto (OpenMLS) account with two devices, registered over the server's HTTP
// API with its own login keys, and a real daemon chat through a real server both ways, each inviting the other.
import assert from "node:assert/strict"
import type { TestContext } from "node:test"
import { describe, it } from "node:test"
import { fromBase64Url, toBase64Url } from "../../rpc-schema/common.js"
import { ServerClient } from "../../daemon/sync/httpClient.js"
import { registered } from "../helpers/chat.js"
import type { TestDaemon } from "../helpers/daemon.js"
import { startServer } from "../helpers/server.js"
import { CoreCryptoClient } from "./coreCrypto.js"
import type { Deliver } from "./coreCrypto.js"
import { ServerDevice } from "./serverDevice.js"

/** A core-crypto device and its session on the server, with how far it has read each group's log. */
interface Device {
  cc: CoreCryptoClient
  server: ServerDevice
  cursors: Map<string, number>
}

/** A core-crypto client for a device the server created: its client id must come out as the server's. */
async function coreCryptoFor(server: ServerDevice): Promise<Device> {
  const { userId, deviceId, clientId } = server.identity
  const domain = clientId.slice(clientId.indexOf("@") + 1)
  const cc = await CoreCryptoClient.create({ userId, deviceId: BigInt(`0x${deviceId}`), domain })
  assert.equal(cc.clientId, clientId)
  return { cc, server, cursors: new Map() }
}

/** Posts core-crypto's Commit with what it spends and removes, as the server's walk-through says. */
function postCommit(
  d: Device,
  groupId: Uint8Array,
  spent: { ref: string; reservationId: string }[] = [],
  removes: string[] = [],
): Deliver {
  return async (bundle) => {
    await d.server.commit(groupId, bundle.commit, spent, removes, bundle.welcome?.serialize())
  }
}

/** Joins from the Welcome in the device's inbox for `groupId`; its log reading starts after the adding Commit. */
async function joinFromInbox(d: Device, groupId: Uint8Array): Promise<void> {
  const items = await d.server.readInbox()
  const w = items.map((i) => i.item).find((i) => i.kind === "welcome" && i.groupId === toBase64Url(groupId))
  assert.ok(w?.kind === "welcome", `no Welcome for ${d.cc.clientId}`)
  assert.deepEqual(await d.cc.join(fromBase64Url(w.welcome)), groupId)
  d.cursors.set(w.groupId, w.seq)
}

/** Processes the group's log from the device's cursor to its end; answers the texts read, as `sender: text`. */
async function catchUp(d: Device, groupId: Uint8Array): Promise<string[]> {
  const key = toBase64Url(groupId)
  const texts: string[] = []
  for (const e of await d.server.readLog(groupId, d.cursors.get(key) ?? 0)) {
    d.cursors.set(key, e.seq)
    // Its own Commits are merged already and its own messages are not for it.
    if (e.senderClientId === d.cc.clientId) continue
    const r = await d.cc.receive(groupId, fromBase64Url(e.message))
    if (r.kind === "text") {
      assert.equal(r.sender, e.senderClientId)
      texts.push(`${r.sender}: ${r.text}`)
    }
  }
  return texts
}

async function send(d: Device, groupId: Uint8Array, text: string): Promise<void> {
  const r = await d.server.postMessage(groupId, await d.cc.encrypt(groupId, text))
  d.cursors.set(toBase64Url(groupId), r.seq)
}

/** The daemon's notification of `text` from device `from` in `groupId`. */
function daemonReceives(daemon: TestDaemon, groupId: Uint8Array, text: string, from: Device) {
  return daemon.client.next(
    "message.received",
    (m) => m.groupId === toBase64Url(groupId) && m.text === text && m.senderDevice === from.server.identity.deviceId,
    20_000,
  )
}

async function setUp(t: TestContext) {
  const server = await startServer(t)
  const api = new ServerClient(server.url)
  t.after(() => api.close())
  const dora = await registered(t, server.url, "dora")
  const doraId = (await dora.client.call("identity.get")).clientId!

  // The core-crypto account: registered with its own login key, a second device added by the first.
  const first = await ServerDevice.register(api, "wire")
  const wire = [await coreCryptoFor(first), await coreCryptoFor(await first.addDevice())]
  for (const d of wire) {
    const results = await d.server.uploadKeyPackages([await d.cc.keyPackage(), await d.cc.keyPackage()])
    assert.deepEqual(
      results.map((r) => r.status),
      ["accepted", "accepted"],
    )
  }
  // The first upload bound each device's MLS key, which core-crypto never exports: the directory lists it.
  const listed = await first.getUser("wire")
  for (const d of wire) {
    const entry = listed.devices.find((x) => x.clientId === d.cc.clientId)
    assert.equal(entry?.mlsKey, toBase64Url(await d.cc.signaturePublicKey()))
  }
  return { dora, doraId, wire: wire as [Device, Device] }
}

describe("interop through the server: core-crypto 10.3.0 (OpenMLS) and a daemon", () => {
  it("the daemon invites a core-crypto account (both devices); they chat both ways; core-crypto's Commits (an update, a new device) are processed", async (t) => {
    const { dora, doraId, wire } = await setUp(t)
    const [w1, w2] = wire

    const g = await dora.client.call("group.create", { name: "from mlsd" })
    const groupId = fromBase64Url(g.groupId)
    await dora.client.call("group.invite", { group: g.groupId, user: "wire" })
    for (const d of wire) await joinFromInbox(d, groupId)
    const roster = await dora.client.call("group.members", { group: g.groupId })
    assert.deepEqual(
      roster.members.flatMap((m) => m.devices.map((x) => x.clientId)).sort(),
      [doraId, w1.cc.clientId, w2.cc.clientId].sort(),
    )

    const sent = await dora.client.call("message.send", { group: g.groupId, text: "hello OpenMLS" })
    assert.equal(sent.state, "sent")
    for (const d of wire) assert.deepEqual(await catchUp(d, groupId), [`${doraId}: hello OpenMLS`])

    const heard = daemonReceives(dora, groupId, "hello mlsd", w1)
    await send(w1, groupId, "hello mlsd")
    const m = await heard
    assert.equal(m.sender, "wire")
    assert.deepEqual(await catchUp(w2, groupId), [`${w1.cc.clientId}: hello mlsd`])

    // A further Commit from core-crypto: a self-update, processed by the daemon and the other device.
    await w2.cc.selfUpdate(groupId, postCommit(w2, groupId))
    const after = daemonReceives(dora, groupId, "after the update", w2)
    await send(w2, groupId, "after the update")
    await after
    assert.deepEqual(await catchUp(w1, groupId), [`${w2.cc.clientId}: after the update`])
    const sent2 = await dora.client.call("message.send", { group: g.groupId, text: "still here" })
    assert.equal(sent2.state, "sent")
    for (const d of wire) assert.deepEqual(await catchUp(d, groupId), [`${doraId}: still here`])

    // The account gets a third device later; one of its devices adds it to the group (as the account's own devices
    // do): the daemon sees a new device of a user it knows and pins its key (device.added).
    const w3 = await coreCryptoFor(await w1.server.addDevice())
    await w3.server.uploadKeyPackages([await w3.cc.keyPackage()])
    const [kp3] = (await w1.server.reserve(w3.cc.clientId)).keyPackages
    assert.equal(kp3?.clientId, w3.cc.clientId)
    const noticed = dora.client.next("device.added", (p) => p.clientId === w3.cc.clientId, 20_000)
    await w1.cc.addMembers(
      groupId,
      [fromBase64Url(kp3.keyPackage)],
      postCommit(w1, groupId, [{ ref: kp3.ref, reservationId: kp3.reservationId }]),
    )
    const added = await noticed
    assert.deepEqual(
      [added.username, added.own, added.signatureKey],
      ["wire", false, toBase64Url(await w3.cc.signaturePublicKey())],
    )
    await joinFromInbox(w3, groupId)
    assert.deepEqual(await catchUp(w2, groupId), [])
    const sent3 = await dora.client.call("message.send", { group: g.groupId, text: "three of you" })
    assert.equal(sent3.state, "sent")
    for (const d of [...wire, w3]) assert.deepEqual(await catchUp(d, groupId), [`${doraId}: three of you`])
  })

  it("core-crypto invites the daemon with a Commit and Welcome through the server; they chat both ways", async (t) => {
    const { dora, doraId, wire } = await setUp(t)
    const [w1, w2] = wire

    const groupId = crypto.getRandomValues(new Uint8Array(16))
    await w1.server.createGroup(groupId)
    await w1.cc.createGroup(groupId)
    // One KeyPackage per device: the daemon's (by handle), and the account's other device's (by client id).
    const reserved = [
      ...(await w1.server.reserve("dora")).keyPackages,
      ...(await w1.server.reserve(w2.cc.clientId)).keyPackages,
    ]
    assert.deepEqual(
      reserved.map((k) => k.clientId),
      [doraId, w2.cc.clientId],
    )
    const joined = dora.client.next("group.joined", (p) => p.groupId === toBase64Url(groupId), 20_000)
    await w1.cc.addMembers(
      groupId,
      reserved.map((k) => fromBase64Url(k.keyPackage)),
      postCommit(
        w1,
        groupId,
        reserved.map((k) => ({ ref: k.ref, reservationId: k.reservationId })),
      ),
    )
    await joined
    await joinFromInbox(w2, groupId)
    const roster = await dora.client.call("group.members", { group: toBase64Url(groupId) })
    assert.deepEqual(
      roster.members.flatMap((m) => m.devices.map((x) => x.clientId)).sort(),
      [doraId, w1.cc.clientId, w2.cc.clientId].sort(),
    )

    const heard = daemonReceives(dora, groupId, "welcome, mlsd", w1)
    await send(w1, groupId, "welcome, mlsd")
    await heard
    assert.deepEqual(await catchUp(w2, groupId), [`${w1.cc.clientId}: welcome, mlsd`])

    const sent = await dora.client.call("message.send", { group: toBase64Url(groupId), text: "thanks, OpenMLS" })
    assert.equal(sent.state, "sent")
    for (const d of wire) assert.deepEqual(await catchUp(d, groupId), [`${doraId}: thanks, OpenMLS`])

    // The daemon's own Commit in core-crypto's group: a self-update, processed by both core-crypto devices.
    await dora.client.call("group.selfUpdate", { group: toBase64Url(groupId) })
    for (const d of wire) assert.deepEqual(await catchUp(d, groupId), [])
    const last = daemonReceives(dora, groupId, "same epoch", w2)
    await send(w2, groupId, "same epoch")
    await last
    // (core-crypto reads a message of an earlier epoch only while its sender is still in the group: read first.)
    assert.deepEqual(await catchUp(w1, groupId), [`${w2.cc.clientId}: same epoch`])

    // core-crypto removes its other device by client id (MLS and the server's roster): the daemon sees that device
    // go; the removed device learns it from the Commit and its inbox.
    const gone = dora.client.next(
      "group.updated",
      (p) => p.groupId === toBase64Url(groupId) && p.removedDevices.some((x) => x.clientId === w2.cc.clientId),
      20_000,
    )
    await w1.cc.removeMembers(groupId, [w2.cc.clientId], postCommit(w1, groupId, [], [w2.cc.clientId]))
    await gone
    assert.deepEqual(await catchUp(w2, groupId), [])
    assert.ok(
      (await w2.server.readInbox()).some((i) => i.item.kind === "removed" && i.item.groupId === toBase64Url(groupId)),
    )
    const rest = await dora.client.call("group.members", { group: toBase64Url(groupId) })
    assert.deepEqual(
      rest.members.flatMap((m) => m.devices.map((x) => x.clientId)).sort(),
      [doraId, w1.cc.clientId].sort(),
    )
    const bye = await dora.client.call("message.send", { group: toBase64Url(groupId), text: "just us" })
    assert.equal(bye.state, "sent")
    assert.deepEqual(await catchUp(w1, groupId), [`${doraId}: just us`])
  })
})
