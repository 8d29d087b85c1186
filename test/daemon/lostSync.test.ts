// A Commit in a group's log that the daemon cannot apply (the server took it; its content is garbage): the group is
// marked out of sync and the frontends are told, instead of the daemon carrying on at an epoch nobody else is at.
import assert from "node:assert/strict"
import { describe, it } from "node:test"
import { DaemonError } from "../../daemon-client/index.js"
import { fromBase64Url } from "../../rpc-schema/common.js"
import { groupWith, registered } from "../helpers/chat.js"
import { postCommit } from "../helpers/groups.js"
import { startServer } from "../helpers/server.js"
import { makeEncodedKeyPackages, newUser, uploadKeyPackages } from "../helpers/users.js"

describe("daemon: a Commit it cannot apply", () => {
  it("marks the group out of sync, says so with group.updated, and refuses sends to it", async (t) => {
    const s = await startServer(t)
    const alice = await registered(t, s.url, "alice")
    const bob = await registered(t, s.url, "bob")
    // Mallory is on the server's roster of the group (Alice adds her KeyPackage) but runs no real MLS client.
    const mallory = await newUser(s.url, "mallory")
    const kps = await makeEncodedKeyPackages(mallory, 1)
    assert.equal((await uploadKeyPackages(s.url, mallory, kps)).status, 200)
    const g = await groupWith(alice, "g", { bob })
    // Listened for before the invitation: bob may apply its Commit before alice's call returns.
    const bobSaw = bob.client.next(
      "group.updated",
      (p) => p.groupId === g.groupId && p.added.includes("mallory"),
      20_000,
    )
    const invited = await alice.client.call("group.invite", { group: g.groupId, user: "mallory" })
    assert.ok(invited.members.includes("mallory"))
    await bobSaw

    const lost = bob.client.next("group.updated", (p) => p.groupId === g.groupId && p.reason === "outOfSync", 20_000)
    const garbage = await postCommit(s.url, mallory, {
      id: g.groupId,
      bytes: fromBase64Url(g.groupId),
      epoch: invited.epoch,
    })
    assert.equal(garbage.status, 201, JSON.stringify(garbage.body))
    const event = await lost
    assert.equal(event.epoch, invited.epoch)
    assert.deepEqual(event.members.sort(), ["alice", "bob", "mallory"])

    const listed = (await bob.client.call("group.list")).groups.find((x) => x.groupId === g.groupId)
    assert.equal(listed?.status, "out_of_sync")
    await assert.rejects(
      bob.client.call("message.send", { group: g.groupId, text: "nobody could read this" }),
      (err: unknown) => err instanceof DaemonError && err.appCode === "group_out_of_sync",
    )
  })
})
