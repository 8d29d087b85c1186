import assert from "node:assert/strict"
import { describe, it } from "node:test"
import { reducer, selectedGroup, type Action } from "../../tui/state.js"
import { group, linkUp, poolStatus, run, t0 } from "./fixtures.js"

const received = (groupId: string, seq: number, text: string, eventId = 10 + seq): Action => ({
  type: "notification",
  name: "message.received",
  params: { eventId, groupId, group: "g", seq, sender: "bob", senderDevice: null, text, sentAt: t0 + seq },
})
const page = (seqs: number[], more = false, queued: string[] = []) => ({
  messages: seqs.map((seq) => ({
    groupId: "id-team",
    seq,
    sender: seq % 2 ? "bob" : "alice",
    senderDevice: null,
    text: `m${seq}`,
    sentAt: t0 + seq,
    receivedAt: t0 + seq,
    own: seq % 2 === 0,
  })),
  more,
  queued: queued.map((text, i) => ({ clientId: `q${i}`, text, createdAt: t0 + 1000 + i })),
})

describe("tui state reducer", () => {
  it("takes user, server, pool and groups from the daemon and selects the first group", () => {
    const s = run(linkUp([group("team"), group("ops")]))
    assert.equal(s.link.kind, "up")
    assert.equal(s.user, "alice")
    assert.deepEqual(s.pool, { available: 32, target: 32, health: "good" })
    assert.deepEqual(
      s.groups.map((g) => g.name),
      ["team", "ops"],
    )
    assert.equal(s.selected, "id-team")
    assert.equal(s.lastEventId, 10)
  })

  it("counts unread messages of groups that are not selected, and clears them on selection", () => {
    let s = run(linkUp([group("team"), group("ops")]), received("id-ops", 1, "hi"), received("id-ops", 2, "there"))
    assert.equal(s.groups[1]!.unread, 2)
    assert.equal(s.groups[0]!.unread, 0)
    s = reducer(s, received("id-team", 1, "seen"))
    assert.equal(s.groups[0]!.unread, 0, "the selected group's messages are read")
    s = reducer(s, { type: "select", delta: 1 })
    assert.equal(s.selected, "id-ops")
    assert.equal(s.groups[1]!.unread, 0)
    s = reducer(s, { type: "select", delta: 1 })
    assert.equal(s.selected, "id-team", "selection wraps around")
    assert.equal(s.lastEventId, 12)
  })

  it("ignores a message it already shows (a replay after reconnect)", () => {
    const s = run(linkUp([group("team")]), received("id-team", 1, "hi"), received("id-team", 1, "hi"))
    assert.equal(s.groups[0]!.messages.length, 1)
  })

  it("shows history pages in seq order, queued messages last, and older pages in front", () => {
    let s = run(linkUp([group("team")]))
    s = reducer(s, { type: "history.loaded", groupId: "id-team", page: page([5, 6], true, ["later"]), older: false })
    let g = selectedGroup(s)!
    assert.deepEqual(
      g.messages.map((m) => [m.text, m.state]),
      [
        ["m5", "sent"],
        ["m6", "sent"],
        ["later", "queued"],
      ],
    )
    assert.equal(g.more, true)
    s = reducer(s, { type: "history.loaded", groupId: "id-team", page: page([3, 4], false), older: true })
    g = selectedGroup(s)!
    assert.deepEqual(
      g.messages.map((m) => m.text),
      ["m3", "m4", "m5", "m6", "later"],
    )
    assert.equal(g.more, false)
    assert.equal(g.messages[1]!.own, true)
  })

  it("marks an own message refused when the daemon refuses it, with a notice in words", () => {
    let s = run(linkUp([group("team")]))
    s = reducer(s, {
      type: "message.sent",
      result: {
        state: "queued",
        clientId: "c1",
        groupId: "id-team",
        sender: "alice",
        senderDevice: null,
        text: "x",
        own: true,
      },
    })
    assert.equal(selectedGroup(s)!.messages[0]!.state, "queued")
    s = reducer(s, {
      type: "notification",
      name: "message.refused",
      params: {
        eventId: 20,
        groupId: "id-team",
        group: "team",
        clientId: "c1",
        text: "x",
        createdAt: t0,
        code: "not_member",
        message: "not a member of this group",
      },
    })
    const m = selectedGroup(s)!.messages[0]!
    assert.equal(m.state, "refused")
    assert.equal(m.error, "not a member of this group")
    assert.match(s.notices.at(-1)!.text, /refused \(not_member\)/)
  })

  it("adds a group it was invited to, with a notice, and follows member changes", () => {
    let s = run(linkUp([]))
    s = reducer(s, {
      type: "notification",
      name: "group.joined",
      params: { eventId: 11, groupId: "id-x", name: "x", epoch: 1, members: ["bob", "alice"], by: "bob" },
    })
    assert.equal(s.selected, "id-x")
    assert.equal(s.notices.at(-1)!.text, "bob added you to x")
    s = reducer(s, {
      type: "notification",
      name: "group.updated",
      params: {
        eventId: 12,
        groupId: "id-x",
        name: "x",
        epoch: 2,
        members: ["bob"],
        added: [],
        removed: ["alice"],
        addedDevices: [],
        removedDevices: [{ username: "alice", deviceId: "3fa2c19e07b4d851", clientId: "a:b@c" }],
        by: "bob",
        reason: "removed",
      },
    })
    assert.equal(s.groups[0]!.status, "removed")
    assert.deepEqual(s.groups[0]!.members, ["bob"])
    assert.equal(s.notices.at(-1)!.kind, "error")
  })

  it("tells of a pending invitation without adding its group", () => {
    const s = reducer(run(linkUp([])), {
      type: "notification",
      name: "invite.received",
      params: {
        eventId: 11,
        groupId: "id-x",
        name: "x",
        inviter: "bob",
        members: ["bob", "alice"],
        epoch: 1,
        receivedAt: t0,
      },
    })
    assert.deepEqual(s.groups, [])
    assert.equal(s.notices.at(-1)!.text, "bob invites you to x (bob, alice): /accept x or /decline x")
  })

  it("counts the pool against the target in force (the adaptive one), not the configured minimum", () => {
    const demand = {
      reservationsPerHour: 40,
      peakBurst: 30,
      peakAt: t0,
      target: 45,
      reason: "peak" as const,
      why: "a burst of 30",
    }
    const s = reducer(run(linkUp([])), {
      type: "notification",
      name: "pool.changed",
      params: { eventId: 13, reason: "maintenance", status: poolStatus(45, { demand }) },
    })
    assert.deepEqual(s.pool, { available: 45, target: 45, health: "good" })
  })

  it("follows pool health and the server link from notifications", () => {
    let s = run(linkUp([]))
    s = reducer(s, {
      type: "notification",
      name: "pool.changed",
      params: { eventId: 11, reason: "reserved", status: poolStatus(2) },
    })
    assert.deepEqual(s.pool, { available: 2, target: 32, health: "critical" })
    s = reducer(s, {
      type: "notification",
      name: "connection.changed",
      params: { eventId: 12, state: "disconnected", server: "http://127.0.0.1:4000", error: "ECONNREFUSED" },
    })
    assert.equal(s.serverState, "disconnected")
  })

  it("keeps groups and the event id across a lost daemon, and reloads history after", () => {
    let s = run(linkUp([group("team")]))
    s = reducer(s, { type: "history.loaded", groupId: "id-team", page: page([1]), older: false })
    s = reducer(s, received("id-team", 2, "x", 40))
    s = reducer(s, { type: "link.down", error: "no daemon answers on its socket", retryInMs: 1000 })
    assert.deepEqual(s.link, { kind: "down", error: "no daemon answers on its socket", retryInMs: 1000 })
    assert.equal(s.groups.length, 1)
    s = reducer(s, linkUp([group("team")], { lastEventId: 30 }))
    assert.equal(s.lastEventId, 40, "never moves back")
    assert.equal(s.groups[0]!.messages.length, 2)
    assert.equal(s.groups[0]!.loaded, false)
  })

  it("scrolls by whole messages between the newest and the furthest the view allows", () => {
    let s = run(linkUp([group("team")]))
    s = reducer(s, { type: "scroll", lines: 10, max: 2 })
    assert.equal(s.scroll, 2)
    s = reducer(s, { type: "scroll", lines: -5, max: 2 })
    assert.equal(s.scroll, 0)
  })

  it("marks a group out of sync on lost history, and active again when it was rejoined", () => {
    const lost = (eventId: number, status: "active" | "out_of_sync", rejoined: boolean): Action => ({
      type: "notification",
      name: "group.historyLost",
      params: {
        eventId,
        groupId: "id-team",
        group: "team",
        after: 3,
        prunedThrough: 7,
        lost: 4,
        canContinue: status === "active",
        epoch: 2,
        groupEpoch: 3,
        status,
        rejoined,
      },
    })
    let s = reducer(run(linkUp([group("team")])), lost(11, "out_of_sync", false))
    assert.equal(s.groups[0]!.status, "out_of_sync")
    assert.match(s.notices.at(-1)!.text, /out of sync: \/rejoin brings it back$/)
    s = reducer(s, lost(12, "active", true))
    assert.equal(s.groups[0]!.status, "active")
    assert.equal(s.notices.at(-1)!.text, "team: rejoined; 4 log entries from while you were out of sync are missing")
  })

  it("keeps the three newest notices", () => {
    const s = run(...["a", "b", "c", "d"].map((text): Action => ({ type: "notice", kind: "info", text })))
    assert.deepEqual(
      s.notices.map((n) => n.text),
      ["b", "c", "d"],
    )
  })
})
