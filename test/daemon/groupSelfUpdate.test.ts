import assert from "node:assert/strict"
import { describe, it } from "node:test"
import { groupWith, registered } from "../helpers/chat.js"
import { secretsInFile } from "../helpers/pool.js"
import { startServer } from "../helpers/server.js"
import type { ChatGroup } from "../../daemon/mls/groupState.js"
import { storedGroupState as storedState } from "../helpers/groupState.js"

/** The leaf of `leafIndex` in a state's ratchet tree (leaves sit at even node indexes, RFC 9420 §4.1). */
function leafOf(state: ChatGroup, leafIndex: number) {
  const node = state.mls.ratchetTree[leafIndex * 2]
  assert.equal(node?.nodeType, "leaf")
  return node.leaf
}

/** This member's own private leaf encryption key in a state. */
function ownLeafPrivateKey(state: ChatGroup): Buffer {
  const key = state.mls.privatePath.privateKeys[state.mls.privatePath.leafIndex * 2]
  assert.ok(key)
  return Buffer.from(key)
}

const code = (c: string) => (e: any) => e.appCode === c

describe("group.selfUpdate", () => {
  it("rotates alice's leaf key: both reach the new epoch, bob sees the new key, messages flow after", async (t) => {
    const s = await startServer(t)
    const [alice, bob] = await Promise.all([registered(t, s.url, "alice"), registered(t, s.url, "bob")])
    const g = await groupWith(alice, "keys", { bob })
    const aliceLeaf = (await alice.client.call("group.members", { group: g.groupId })).members
      .flatMap((m) => m.devices)
      .find((d) => d.self)!
    // Events are sent from inside the transaction that records them; a call answered after the event means that
    // transaction has ended, so the stored state can be read.
    const epochBefore = (await bob.client.call("group.members", { group: g.groupId })).epoch

    const before = storedState(bob.dbPath, g.groupId)
    assert.equal(Number(before.mls.groupContext.epoch), epochBefore)
    const oldLeaf = leafOf(before, aliceLeaf.leafIndex)
    const oldPrivate = ownLeafPrivateKey(storedState(alice.dbPath, g.groupId))

    const bobSees = bob.client.next("group.updated", (p) => p.groupId === g.groupId && p.epoch === epochBefore + 1)
    const r = await alice.client.call("group.selfUpdate", { group: "keys" })
    assert.deepEqual(r, { groupId: g.groupId, epoch: epochBefore + 1 })
    const u = await bobSees
    assert.equal(u.by, "alice")
    assert.equal(u.reason, "commit")
    assert.deepEqual([u.members, u.added, u.removed], [["alice", "bob"], [], []])

    // As above: bob's transaction applying the Commit has ended once this call is answered.
    for (const d of [alice, bob])
      assert.equal((await d.client.call("group.members", { group: g.groupId })).epoch, epochBefore + 1)
    const aliceState = storedState(alice.dbPath, g.groupId)
    const bobState = storedState(bob.dbPath, g.groupId)
    const newLeaf = leafOf(bobState, aliceLeaf.leafIndex)
    assert.notDeepEqual(newLeaf.hpkePublicKey, oldLeaf.hpkePublicKey, "bob sees a new encryption key for alice")
    assert.deepEqual(newLeaf.hpkePublicKey, leafOf(aliceState, aliceLeaf.leafIndex).hpkePublicKey)
    // The identity stays: the signature key is the pinned one.
    assert.deepEqual(newLeaf.signaturePublicKey, oldLeaf.signaturePublicKey)
    // Both derived the same epoch secrets (RFC 9420 §8.7).
    assert.deepEqual(aliceState.mls.keySchedule.epochAuthenticator, bobState.mls.keySchedule.epochAuthenticator)
    assert.notDeepEqual(
      aliceState.mls.keySchedule.epochAuthenticator,
      before.mls.keySchedule.epochAuthenticator,
      "a new epoch",
    )
    // Alice's old private leaf key is gone from her database file and its WAL.
    assert.notDeepEqual(ownLeafPrivateKey(aliceState), oldPrivate)
    assert.equal(secretsInFile(alice.dbPath, [oldPrivate]), 0)

    const toBob = bob.client.next("message.received", (p) => p.text === "after the update")
    await alice.client.call("message.send", { group: "keys", text: "after the update" })
    assert.equal((await toBob).sender, "alice")
    const toAlice = alice.client.next("message.received", (p) => p.text === "read you")
    await bob.client.call("message.send", { group: "keys", text: "read you" })
    assert.equal((await toAlice).sender, "bob")
  })

  it("answers not_found for an unknown group, and not_member for a group this profile was removed from", async (t) => {
    const s = await startServer(t)
    const [alice, bob] = await Promise.all([registered(t, s.url, "alice"), registered(t, s.url, "bob")])
    await assert.rejects(alice.client.call("group.selfUpdate", { group: "nope" }), (e: any) => {
      assert.equal(e.appCode, "not_found")
      assert.equal(e.code, -32002)
      return true
    })
    const g = await groupWith(alice, "gone", { bob })
    const out = bob.client.next("group.updated", (p) => p.groupId === g.groupId && p.reason === "removed")
    await alice.client.call("group.remove", { group: "gone", user: "bob" })
    await out
    await assert.rejects(bob.client.call("group.selfUpdate", { group: "gone" }), code("not_member"))
  })
})
