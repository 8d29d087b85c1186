/**
 * What the server's retention and session ends do to a daemon, with real parts: a real server (ManualClock moved past
 * the retention period, then its GC run as the GC timer would), real daemons over their sockets, real MLS. Nothing
 * deleted before a daemon fetched it is lost silently (`group.historyLost`, `invites.expired`), a group whose state
 * cannot follow any more refuses sends with `group_out_of_sync`, and a stream whose session ends (4001) is resumed
 * after a fresh login.
 */
import assert from "node:assert/strict"
import type { TestContext } from "node:test"
import { describe, it } from "node:test"
import { DaemonError } from "../../daemon-client/index.js"
import type { NotificationParams } from "../../rpc-schema/daemon/index.js"
import { groupWith, history, registered } from "../helpers/chat.js"
import type { TestDaemon } from "../helpers/daemon.js"
import { inboxExpiredReport, revokeSessions, startServer, type TestServer } from "../helpers/server.js"

const hour = 3600_000
const retention = { deliveryRetentionMs: hour }

/** alice and bob in group "g", bob at the head of its log. */
async function pair(t: TestContext, config = {}) {
  const s = await startServer(t, { ...retention, ...config })
  const alice = await registered(t, s.url, "alice")
  const bob = await registered(t, s.url, "bob")
  const g = await groupWith(alice, "g", { bob })
  const seen = bob.client.next("message.received", (p) => p.text === "before")
  await alice.client.call("message.send", { group: g.groupId, text: "before" })
  await seen
  return { s, alice, bob, g }
}

const lastSeqOf = async (d: TestDaemon, groupId: string) =>
  (await d.client.call("group.list")).groups.find((x) => x.groupId === groupId)!.lastSeq

/** Moves the server past the retention period of everything stored so far and runs its GC. */
async function expireEverything(s: TestServer): Promise<void> {
  s.clock.advance(hour + 1)
  await s.app.delivery.collectGarbage()
}

/** The daemon started again, subscribed from its first event; resolves with the first `name` that satisfies `p`. */
async function restartAndAwait<N extends "group.historyLost" | "invites.expired">(
  d: TestDaemon,
  name: N,
  p: (x: NotificationParams<N>) => boolean = () => true,
): Promise<{ d: TestDaemon; event: NotificationParams<N> }> {
  const again = await d.restart()
  const event = again.client.next(name, p, 20_000)
  await again.client.call("events.subscribe", { after: 0 })
  return { d: again, event: await event }
}

/** Resolves once the daemon's stream is up and caught up (the daemon must be subscribed to events). */
async function untilConnected(d: TestDaemon, timeoutMs = 20_000): Promise<void> {
  let off: () => unknown = () => undefined
  let timer: NodeJS.Timeout | undefined
  const up = new Promise<void>((resolve, reject) => {
    off = d.client.on("connection.changed", (p) => p.state === "connected" && resolve())
    timer = setTimeout(() => reject(new Error(`not connected within ${timeoutMs} ms`)), timeoutMs)
  })
  try {
    if ((await d.client.call("daemon.status")).connection !== "connected") await up
  } finally {
    off()
    clearTimeout(timer)
  }
}

async function rejectsWith(call: Promise<unknown>, appCode: string): Promise<void> {
  await assert.rejects(call, (err: unknown) => err instanceof DaemonError && err.appCode === appCode)
}

describe("daemon: retention", () => {
  it("marks a group out of sync when a Commit was deleted before it was fetched, and refuses sends to it", async (t) => {
    const { s, alice, bob, g } = await pair(t)
    const bobSeq = await lastSeqOf(bob, g.groupId)
    assert.equal(await bob.stop(), 0)

    // While bob is offline: a message, a Commit (epoch 1 → 2), a message; all older than the retention period.
    await alice.client.call("message.send", { group: g.groupId, text: "lost 1" })
    assert.equal((await alice.client.call("group.selfUpdate", { group: g.groupId })).epoch, 2)
    await alice.client.call("message.send", { group: g.groupId, text: "lost 2" })
    s.clock.advance(hour + 1)
    const kept = await alice.client.call("message.send", { group: g.groupId, text: "after the gap" })
    assert.equal(kept.state, "sent")
    await s.app.delivery.collectGarbage()

    const { d: bob2, event } = await restartAndAwait(bob, "group.historyLost", (p) => p.groupId === g.groupId)
    assert.deepEqual(
      { ...event, eventId: 0 },
      {
        eventId: 0,
        groupId: g.groupId,
        group: "g",
        after: bobSeq,
        prunedThrough: kept.seq! - 1,
        lost: kept.seq! - 1 - bobSeq,
        canContinue: false,
        epoch: 1,
        groupEpoch: 2,
        status: "out_of_sync",
        rejoined: false,
      },
    )
    const listed = (await bob2.client.call("group.list")).groups.find((x) => x.groupId === g.groupId)!
    assert.equal(listed.status, "out_of_sync")
    assert.equal((await bob2.client.call("group.members", { group: "g" })).status, "out_of_sync")

    // Fail fast with the stable error, nothing queued: a message at epoch 1 nobody could read.
    await rejectsWith(bob2.client.call("message.send", { group: "g", text: "unreadable" }), "group_out_of_sync")
    await rejectsWith(bob2.client.call("group.selfUpdate", { group: "g" }), "group_out_of_sync")
    await rejectsWith(bob2.client.call("group.leave", { group: "g" }), "group_out_of_sync")
    assert.deepEqual((await bob2.client.call("message.list", { group: "g" })).queued, [])
    // The history kept what was received; nothing after the gap could be read.
    assert.deepEqual(await history(bob2.client, "g"), ["before"])

    // Reported once: a restart (the stream caught up again) does not report it again.
    await untilConnected(bob2)
    assert.equal(await bob2.stop(), 0)
    const bob3 = await bob2.restart()
    await bob3.client.call("events.subscribe", {})
    await untilConnected(bob3)
    const again = await bob3.client.call("events.subscribe", { after: 0, events: ["group.historyLost"] })
    assert.equal(again.replayed, 1)
    assert.equal((await bob3.client.call("group.list")).groups[0]!.status, "out_of_sync")
  })

  it("goes on when only application messages of the current epoch were deleted", async (t) => {
    const { s, alice, bob, g } = await pair(t)
    const bobSeq = await lastSeqOf(bob, g.groupId)
    assert.equal(await bob.stop(), 0)
    await alice.client.call("message.send", { group: g.groupId, text: "lost 1" })
    await alice.client.call("message.send", { group: g.groupId, text: "lost 2" })
    s.clock.advance(hour + 1)
    await alice.client.call("message.send", { group: g.groupId, text: "kept" })
    await s.app.delivery.collectGarbage()

    const again = await bob.restart()
    const lost = again.client.next("group.historyLost", (p) => p.groupId === g.groupId, 20_000)
    const kept = again.client.next("message.received", (p) => p.text === "kept", 20_000)
    await again.client.call("events.subscribe", { after: 0 })
    const event = await lost
    assert.equal(event.canContinue, true)
    assert.equal(event.status, "active")
    assert.equal(event.after, bobSeq)
    assert.equal(event.lost, 2)
    assert.equal(event.epoch, 1)
    assert.equal(event.groupEpoch, 1)
    assert.ok((await kept).seq > event.prunedThrough)
    assert.equal((await again.client.call("group.list")).groups[0]!.status, "active")

    // Both ways, as before.
    const atAlice = alice.client.next("message.received", (p) => p.text === "bob is back", 20_000)
    assert.equal((await again.client.call("message.send", { group: "g", text: "bob is back" })).state, "sent")
    await atAlice
    assert.deepEqual(await history(again.client, "g"), ["before", "kept", "bob is back"])
  })

  it("reports an invitation that expired in the inbox, and acknowledges the report", async (t) => {
    const s = await startServer(t, retention)
    const alice = await registered(t, s.url, "alice")
    const carol = await registered(t, s.url, "carol")
    assert.equal(await carol.stop(), 0)
    const g = await alice.client.call("group.create", { name: "g" })
    await alice.client.call("group.invite", { group: g.groupId, user: "carol" })
    await expireEverything(s)
    const report = await inboxExpiredReport(s, "carol")
    // The Welcome, and the reservation and spend of carol's KeyPackage.
    assert.equal(report?.count, 3)

    const { d: carol2, event } = await restartAndAwait(carol, "invites.expired")
    assert.equal(event.count, 3)
    assert.equal(event.through, report.through)
    assert.deepEqual((await carol2.client.call("group.list")).groups, [])
    // The acknowledgement clears the report on the server (it has no event of its own: polled, bounded).
    const deadline = Date.now() + 10_000
    while ((await inboxExpiredReport(s, "carol")) !== undefined) {
      assert.ok(Date.now() < deadline, "the report is still on the server")
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  })
})

describe("daemon: session end on the stream", () => {
  it("logs in again at once when its session is revoked or expires, and keeps receiving", async (t) => {
    const sessionTtlMs = 10 * 60_000
    const { s, alice, bob, g } = await pair(t, { sessionTtlMs })
    const states: string[] = []
    bob.client.on("connection.changed", (p) => states.push(p.state))

    // Revoked, as DELETE /v1/sessions does: the server closes bob's stream with 4001 "session revoked".
    assert.ok((await revokeSessions(s, "bob")) >= 1)
    const first = bob.client.next("message.received", (p) => p.text === "after revoke", 20_000)
    await alice.client.call("message.send", { group: g.groupId, text: "after revoke" })
    await first

    // Expired, by the server's clock: both streams close with 4001 "session expired".
    s.clock.advance(sessionTtlMs + 1)
    const second = bob.client.next("message.received", (p) => p.text === "after expiry", 20_000)
    const atAlice = alice.client.next("message.received", (p) => p.text === "bob after expiry", 20_000)
    await alice.client.call("message.send", { group: g.groupId, text: "after expiry" })
    await second
    await bob.client.call("message.send", { group: g.groupId, text: "bob after expiry" })
    await atAlice
    // A session end is not an outage: the link was never reported down.
    assert.deepEqual(states, [])
    assert.deepEqual(await history(bob.client, "g"), ["before", "after revoke", "after expiry", "bob after expiry"])
  })
})
