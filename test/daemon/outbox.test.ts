// The outbox (issue 6): a crash or an outage never loses or doubles a send, and a crash of the receiver never loses or
// doubles a received message. Real server, real daemons killed with SIGKILL.
import assert from "node:assert/strict"
import { describe, it } from "node:test"
import { rpcClient, type TestDaemon } from "../helpers/daemon.js"
import { groupWith, history, registered, sendAll } from "../helpers/chat.js"
import { seededRandom } from "../helpers/random.js"
import { startServer } from "../helpers/server.js"

const range = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => `${prefix}${i}`)

/** Sends `text` from `from` and waits until `to` received it: everything `from` sent before is then at `to`. */
async function marker(from: TestDaemon, to: TestDaemon, group: string, text: string): Promise<void> {
  const heard = to.client.next("message.received", (p) => p.text === text, 30_000)
  await from.client.call("message.send", { group, text })
  await heard
}

describe("outbox", () => {
  it("queues messages while the server is down and posts each once when it is back", async (t) => {
    const s = await startServer(t)
    const [alice, bob] = await Promise.all(["alice", "bob"].map((n) => registered(t, s.url, n)))
    const g = await groupWith(alice!, "outage", { bob: bob! })
    const first = await alice!.client.call("message.send", { group: "outage", text: "before" })
    assert.equal(first.state, "sent")
    assert.equal(first.seq, 2)

    await s.stop()
    const queued = []
    for (const text of ["q1", "q2", "q3"])
      queued.push(await alice!.client.call("message.send", { group: "outage", text }))
    assert.deepEqual(
      queued.map((q) => [q.state, q.seq]),
      [
        ["queued", undefined],
        ["queued", undefined],
        ["queued", undefined],
      ],
    )
    const listed = await alice!.client.call("message.list", { group: "outage" })
    assert.deepEqual(
      listed.queued.map((q) => q.text),
      ["q1", "q2", "q3"],
    )
    assert.deepEqual(
      listed.messages.map((m) => m.text),
      ["before"],
    )

    const last = bob!.client.next("message.received", (p) => p.text === "q3", 60_000)
    await s.start()
    await last
    await marker(alice!, bob!, g.groupId, "after")
    const want = ["before", "q1", "q2", "q3", "after"]
    assert.deepEqual(await history(bob!.client, "outage"), want)
    assert.deepEqual(await history(alice!.client, "outage"), want)
    assert.deepEqual((await alice!.client.call("message.list", { group: "outage" })).queued, [])

    // A frontend that subscribes later gets the recorded group.joined and message.received events replayed.
    const late = await rpcClient(bob!.socketPath)
    t.after(() => late.close())
    const seen: string[] = []
    late.on("group.joined", (p) => seen.push(`joined ${p.name}`))
    late.on("message.received", (p) => seen.push(p.text))
    const replayedLast = late.next("message.received", (p) => p.text === "after")
    const sub = await late.call("events.subscribe", { after: 0 })
    await replayedLast
    assert.ok(sub.replayed >= want.length + 1)
    assert.deepEqual(seen, ["joined outage", ...want])
  })

  it("a queued message the server refuses after a restart is dropped and reported as message.refused", async (t) => {
    const s = await startServer(t)
    const [alice, bob] = await Promise.all(["alice", "bob"].map((n) => registered(t, s.url, n)))
    const g = await groupWith(alice!, "refusal", { bob: bob! })
    await s.stop()
    const queued = await alice!.client.call("message.send", { group: "refusal", text: "never sent" })
    assert.equal(queued.state, "queued")
    await alice!.stop()
    // While alice's daemon is down, bob removes her: the server will refuse her queued message for good.
    await s.start()
    await bob!.client.call("group.remove", { group: "refusal", user: "alice" })

    const alice2 = await alice!.restart()
    const refused = alice2.client.next("message.refused", (p) => p.clientId === queued.clientId, 30_000)
    // Replays the notification if it was recorded before this frontend subscribed.
    await alice2.client.call("events.subscribe", { after: 0 })
    const r = await refused
    assert.deepEqual([r.groupId, r.group, r.text, r.code], [g.groupId, "refusal", "never sent", "not_member"])
    assert.deepEqual((await alice2.client.call("message.list", { group: "refusal" })).queued, [])
    assert.ok(!(await history(alice2.client, "refusal")).includes("never sent"))
    assert.ok(!(await history(bob!.client, "refusal")).includes("never sent"))
  })

  it("64 sends in flight are encrypted in call order and land once; a bad one among them fails alone", async (t) => {
    const s = await startServer(t, { postBurst: 1e6, postPerMinute: 1e6 })
    const [alice, bob] = await Promise.all(["alice", "bob"].map((n) => registered(t, s.url, n)))
    const g = await groupWith(alice!, "burst", { bob: bob! })
    const texts = range(300, "b")
    const last = bob!.client.next("message.received", (p) => p.text === texts.at(-1), 60_000)
    const calls = texts.map((text) => alice!.client.call("message.send", { group: g.groupId, text }))
    const bad = alice!.client.call("message.send", { group: "no such group", text: "x" }).then(
      () => assert.fail("a send to an unknown group succeeded"),
      (e: { appCode?: string }) => e.appCode,
    )
    const sent = await Promise.all(calls)
    assert.equal(await bad, "not_found")
    const seqs = sent.map((m) => m.seq!)
    assert.deepEqual(
      seqs,
      seqs.map((_, i) => seqs[0]! + i),
      "one seq each, in call order, no gap",
    )
    await last
    assert.deepEqual(await history(bob!.client, "burst"), texts, "bob: each once, in order")
    assert.deepEqual(await history(alice!.client, "burst"), texts, "alice: each once, in order")
  })

  it("alice killed while sending 200 messages: each acknowledged one reaches bob once, in order", async (t) => {
    const s = await startServer(t, { postBurst: 1e6, postPerMinute: 1e6 })
    const [alice, bob] = await Promise.all(["alice", "bob"].map((n) => registered(t, s.url, n)))
    const g = await groupWith(alice!, "crash", { bob: bob! })
    const texts = range(200, "m")
    const acked = new Set<number>()
    const random = seededRandom(t)
    const killAt = random.int(40, 160)
    let killed: Promise<unknown> | undefined
    await sendAll(alice!.client, g.groupId, texts, 16, (i) => {
      acked.add(i)
      if (acked.size === killAt) killed = alice!.stop("SIGKILL")
    }).catch(() => undefined)
    await killed

    const alice2 = await alice!.restart()
    await alice2.client.call("events.subscribe")
    await marker(alice2, bob!, g.groupId, "end")
    const got = await history(bob!.client, "crash")
    assert.equal(got.at(-1), "end")
    const indexes = got.slice(0, -1).map((x) => Number(x.slice(1)))
    assert.equal(new Set(indexes).size, indexes.length, "no message arrived twice")
    assert.deepEqual(
      indexes,
      [...indexes].sort((a, b) => a - b),
      "in the order sent",
    )
    for (const i of acked) assert.ok(indexes.includes(i), `acknowledged m${i} arrived (seed ${random.seed})`)
    assert.deepEqual(await history(alice2.client, "crash"), got, "alice's own history matches, each once")
    assert.deepEqual((await alice2.client.call("message.list", { group: "crash" })).queued, [])
  })

  it("bob killed at 5 random moments while 500 messages arrive: his history holds each once, in order", async (t) => {
    const s = await startServer(t, { postBurst: 1e6, postPerMinute: 1e6 })
    const [alice, bob0] = await Promise.all(["alice", "bob"].map((n) => registered(t, s.url, n)))
    const g = await groupWith(alice!, "arrivals", { bob: bob0! })
    const texts = range(500, "m")
    let bob = bob0!
    const random = seededRandom(t)
    const sending = sendAll(alice!.client, g.groupId, texts, 8)
    for (let k = 0; k < 5; k++) {
      // Not a wait for something to happen: the kill moment itself is what is random (seeded, replayable).
      await new Promise((r) => setTimeout(r, random.int(50, 600)))
      await bob.stop("SIGKILL")
      bob = await bob.restart()
      // After each restart the history is a prefix of what was sent: each message once, in order, no gap.
      const soFar = await history(bob.client, "arrivals")
      assert.deepEqual(soFar, texts.slice(0, soFar.length), `after kill ${k + 1} (seed ${random.seed})`)
    }
    await sending
    await bob.client.call("events.subscribe")
    await marker(alice!, bob, g.groupId, "end")
    assert.deepEqual(await history(bob.client, "arrivals"), [...texts, "end"], `seed ${random.seed}`)
  })
})
