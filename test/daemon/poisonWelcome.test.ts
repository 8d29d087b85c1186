import assert from "node:assert/strict"
import { describe, it } from "node:test"
import { fromBase64Url, toBase64Url } from "../../rpc-schema/common.js"
import { addMembers, createChatGroup } from "../../daemon/mls/group.js"
import { decodeKeyPackageBytes } from "../../daemon/mls/groupKeyPackage.js"
import { registered } from "../helpers/chat.js"
import { createGroup, postCommit } from "../helpers/groups.js"
import { http } from "../helpers/http.js"
import { startServer } from "../helpers/server.js"
import { newUser, testSuite, type TestUser } from "../helpers/users.js"

/**
 * A Welcome made the way a foreign client would: a real MLS group whose creator's credential names `identity`, with
 * `target` added from a KeyPackage reserved on the server, posted through the server's commit route.
 */
async function welcomeFrom(base: string, sender: TestUser, identity: string, target: string): Promise<string> {
  const cs = await testSuite()
  const g = await createGroup(base, sender)
  const group = await createChatGroup({
    name: "poison",
    creator: { identity, keys: { publicKey: sender.publicKey, privateKey: sender.seed } },
    now: Date.now(),
    cs,
    groupId: g.bytes,
  })
  const reserved = await http(base, "POST", "/v1/keypackages/reserve", { token: sender.token, json: { target } })
  assert.equal(reserved.status, 201)
  const keyPackage = decodeKeyPackageBytes(fromBase64Url(reserved.body.keyPackage))
  const pending = await addMembers(
    group,
    [
      {
        identity: reserved.body.keyPackages[0].clientId,
        signaturePublicKey: keyPackage.leafNode.signaturePublicKey,
        keyPackage,
      },
    ],
    Date.now(),
    cs,
    async () => ({ kind: "accepted" }),
  )
  const r = await postCommit(base, sender, g, {
    commit: toBase64Url(pending.commit),
    keyPackages: [{ user: target, ref: reserved.body.ref, reservationId: reserved.body.reservationId }],
    welcome: toBase64Url(pending.welcome!),
  })
  assert.equal(r.status, 201, JSON.stringify(r.body))
  return g.id
}

describe("a Welcome that cannot be handled", () => {
  it("is refused and acknowledged; later invites are joined and the daemon stays connected", async (t) => {
    const s = await startServer(t)
    const alice = await registered(t, s.url, "alice")
    const bob = await registered(t, s.url, "bob")
    const mallory = await newUser(s.url, "mallory")

    // The directory answers 400 invalid_request for this identity (it cannot be a user name).
    const failed = bob.client.next("invite.failed", () => true, 20_000)
    const poisonId = await welcomeFrom(s.url, mallory, "Mallory, not a user", "bob")
    const f = await failed
    assert.equal(f.groupId, poisonId)
    assert.equal(f.code, "credential_refused")

    // A normal invite after it is joined, and the link never went down.
    let downs = 0
    bob.client.on("connection.changed", (p) => void (p.state !== "connected" && downs++))
    const g = await alice.client.call("group.create", { name: "real" })
    const joined = bob.client.next("group.joined", (p) => p.groupId === g.groupId, 20_000)
    await alice.client.call("group.invite", { group: "real", user: "bob" })
    await joined
    assert.equal(downs, 0)
    assert.equal((await bob.client.call("daemon.status")).connection, "connected")

    // Acknowledged: after a restart it does not come again. Inbox items are handled in order, so once a Welcome sent
    // after a restart is joined, a poison Welcome still in the inbox would have been reported before it.
    await bob.stop()
    const bob2 = await bob.restart()
    let again = 0
    bob2.client.on("invite.failed", () => again++)
    await bob2.client.call("events.subscribe")
    const g2 = await alice.client.call("group.create", { name: "second" })
    const joined2 = bob2.client.next("group.joined", (p) => p.groupId === g2.groupId, 20_000)
    await alice.client.call("group.invite", { group: "second", user: "bob" })
    await joined2
    assert.equal(again, 0)
  })
})
