/**
 * Retention never loses anything silently: a real server with a ManualClock moved past the retention period, its GC
 * run (`app.delivery.collectGarbage`, what the GC timer calls), and members reading the log over HTTP and the stream.
 */
import assert from "node:assert/strict"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, it } from "node:test"
import { fromBase64Url } from "../../rpc-schema/common.js"
import { ackInbox, createGroup, postCommit, postMessage, readInbox, readLog, reserve } from "../helpers/groups.js"
import { fakeMessage, fakeWelcome, newGroupId } from "../helpers/mls.js"
import { writeOldServerDb } from "../helpers/oldServerDb.js"
import { startServer, type TestServer } from "../helpers/server.js"
import { StreamClient } from "../helpers/stream.js"
import {
  login,
  makeEncodedKeyPackages,
  newIdentity,
  newUser,
  uploadKeyPackages,
  type TestUser,
} from "../helpers/users.js"

const hour = 3600_000
const config = { deliveryRetentionMs: hour, postBurst: 1e9, postPerMinute: 1e9 }
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)

async function withKeys(s: TestServer, user: TestUser, n: number): Promise<void> {
  const r = await uploadKeyPackages(s.url, user, await makeEncodedKeyPackages(user, n, { now: s.clock.now() }))
  assert.equal(r.status, 200)
}

async function post(s: TestServer, user: TestUser, g: Parameters<typeof postMessage>[2]): Promise<number> {
  const r = await postMessage(s.url, user, g)
  assert.equal(r.status, 201)
  return r.body.seq
}

/** Log seqs of a read, and its prunedThrough (absent: undefined). */
async function logOf(s: TestServer, user: TestUser, g: Parameters<typeof readLog>[2], after: number) {
  const r = await readLog(s.url, user, g, after)
  assert.equal(r.status, 200)
  return {
    seqs: (r.body.entries as { seq: number }[]).map((e) => e.seq),
    prunedThrough: r.body.prunedThrough as number | undefined,
    lastSeq: r.body.lastSeq as number,
  }
}

describe("retention: group logs", () => {
  it("tells a member offline past retention of the deleted entries, on log reads and on the stream", async (t) => {
    const s = await startServer(t, config)
    const [alice, bob, carol, dave, eve] = await Promise.all(
      ["alice", "bob", "carol", "dave", "eve"].map((n) => newUser(s.url, n)),
    )
    for (const u of [bob!, carol!, eve!]) await withKeys(s, u, 1)
    const g = await createGroup(s.url, alice!)
    const keyPackages = await Promise.all(["bob", "carol", "eve"].map((u) => reserve(s.url, alice!, u)))
    const add = await postCommit(s.url, alice!, g, { keyPackages, welcome: fakeWelcome() })
    assert.equal(add.body.seq, 1)

    // Carol stays connected throughout; bob reads up to seq 3 and goes offline; eve never comes online.
    const carolStream = await StreamClient.connect(s.url, carol!.token)
    const bobFirst = await StreamClient.connect(s.url, bob!.token)
    t.after(() => carolStream.close())
    assert.equal(await post(s, alice!, g), 2)
    assert.equal(await post(s, alice!, g), 3)
    await bobFirst.until(() => bobFirst.cursors.get(g.id) === 3, "bob at seq 3")
    await bobFirst.close()
    // Entries come after the Welcome and the key events before it: every inbox item of each has arrived.
    await carolStream.until(() => carolStream.cursors.get(g.id) === 3, "carol at seq 3")
    for (const [u, c] of [
      [bob!, bobFirst],
      [carol!, carolStream],
    ] as const)
      assert.equal((await ackInbox(s.url, u, c.inboxCursor)).status, 200)

    // Seqs 4..9, all received at the same old instant: eve is removed at 6.
    await post(s, alice!, g)
    await post(s, alice!, g)
    const removal = await postCommit(s.url, alice!, g, { removes: ["eve"] })
    assert.equal(removal.body.seq, 6)
    await post(s, alice!, g)
    await post(s, alice!, g)
    assert.equal((await postCommit(s.url, alice!, g)).body.seq, 9)
    await carolStream.until(() => carolStream.cursors.get(g.id) === 9, "carol at seq 9")

    // Past retention: dave joins at seq 10 and two messages follow; GC deletes the old prefix 1..9.
    s.clock.advance(2 * hour)
    await withKeys(s, dave!, 1)
    const daveAdd = await postCommit(s.url, alice!, g, {
      keyPackages: [await reserve(s.url, alice!, "dave")],
      welcome: fakeWelcome(),
    })
    assert.equal(daveAdd.body.seq, 10)
    const gc = await s.app.delivery.collectGarbage()
    assert.equal(gc.logEntries, 9)
    assert.equal(await post(s, alice!, g), 11)
    assert.equal(await post(s, alice!, g), 12)

    // Log reads: [user, after, entries, prunedThrough, lastSeq].
    const cases: [string, TestUser, number, number[], number | undefined, number][] = [
      ["bob, offline at 3", bob!, 3, [10, 11, 12], 9, 12],
      ["bob, from the start (joined at 1)", bob!, 0, [10, 11, 12], 9, 12],
      ["bob, once past the gap", bob!, 9, [10, 11, 12], undefined, 12],
      ["carol, cursor at the end of the deleted range", carol!, 9, [10, 11, 12], undefined, 12],
      ["carol, cursor at the head", carol!, 12, [], undefined, 12],
      ["dave, joined after the deleted range", dave!, 0, [11, 12], undefined, 12],
      ["eve, removed inside it: the gap stops at her removal", eve!, 0, [], 6, 6],
      ["alice, the creator", alice!, 0, [10, 11, 12], 9, 12],
    ]
    for (const [what, user, after, seqs, prunedThrough, lastSeq] of cases) {
      assert.deepEqual(await logOf(s, user, g, after), { seqs, prunedThrough, lastSeq }, what)
    }

    // The stream: bob resumes from 3 and gets a pruned frame before the entries after the gap.
    const bob2 = await StreamClient.connect(s.url, bob!.token, { groups: bobFirst.cursors, inboxAfter: 0 })
    const daveStream = await StreamClient.connect(s.url, dave!.token)
    const eveStream = await StreamClient.connect(s.url, eve!.token)
    t.after(() => Promise.all([bob2.close(), daveStream.close(), eveStream.close()]))
    await Promise.all([bob2, daveStream, eveStream].map((c) => c.until(() => c.caughtUp(), "caughtUp")))
    const ofGroup = (c: StreamClient) =>
      c.frames.flatMap((f) =>
        f.type === "pruned" && f.groupId === g.id
          ? [`pruned ${f.after}..${f.prunedThrough}`]
          : f.type === "entry" && f.groupId === g.id
            ? [`entry ${f.seq}`]
            : [],
      )
    assert.deepEqual(ofGroup(bob2), ["pruned 3..9", "entry 10", "entry 11", "entry 12"])
    assert.deepEqual(
      bob2.frames.find((f) => f.type === "caughtUp"),
      { type: "caughtUp", groups: [{ groupId: g.id, seq: 12 }], inbox: 0 },
    )
    assert.deepEqual(ofGroup(daveStream), ["entry 11", "entry 12"], "dave joined after the deleted range")
    assert.deepEqual(ofGroup(eveStream), ["pruned 1..6"], "eve: up to her removal, whose notice expired too")
    assert.equal(eveStream.inboxExpired().length, 1)

    // Carol was connected and at seq 9 when GC ran: the live entries follow, with no gap to report.
    await carolStream.until(() => carolStream.cursors.get(g.id) === 12, "carol at seq 12")
    assert.deepEqual(
      ofGroup(carolStream),
      range(2, 12).map((n) => `entry ${n}`),
    )
    assert.equal(carolStream.inboxExpired().length, 0, "carol acknowledged her items")
  })

  it("reports the deleted range of a database written before migration 4", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "mls-retention-"))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    const dbPath = join(dir, "server.db")
    // Schema 3: seqs 1..4 were deleted by the old retention, which recorded nothing.
    const id = newIdentity()
    const g = { ...newGroupId(), epoch: 0 }
    const now = Date.now()
    const entries = range(5, 7).map((seq) => ({
      seq,
      epoch: 0,
      kind: "application",
      sender: "alice",
      data: fromBase64Url(fakeMessage(g.bytes, 0)),
      receivedAt: now,
    }))
    writeOldServerDb(dbPath, 3, {
      users: [{ name: "alice", key: id.publicKey, createdAt: now }],
      groups: [
        {
          id: g.id,
          epoch: 0,
          lastSeq: 7,
          createdBy: "alice",
          createdAt: now,
          members: [{ name: "alice", joinedSeq: 0 }],
          entries,
        },
      ],
    })
    const s = await startServer(t, { ...config, dbPath })
    const alice = { name: "alice", ...id, token: await login(s.url, "alice", id) }
    assert.deepEqual(await logOf(s, alice, g, 0), { seqs: [5, 6, 7], prunedThrough: 4, lastSeq: 7 })
    assert.deepEqual(await logOf(s, alice, g, 4), { seqs: [5, 6, 7], prunedThrough: undefined, lastSeq: 7 })
  })
})

describe("retention: inbox", () => {
  it("counts unacknowledged items it deletes, repeats the report until acknowledged past it, then starts over", async (t) => {
    const s = await startServer(t, config)
    const alice = await newUser(s.url, "alice")
    const bob = await newUser(s.url, "bob")
    const addBob = async () => {
      await withKeys(s, bob, 1)
      const g = await createGroup(s.url, alice)
      const r = await postCommit(s.url, alice, g, {
        keyPackages: [await reserve(s.url, alice, "bob")],
        welcome: fakeWelcome(),
      })
      assert.equal(r.status, 201)
      return g
    }
    const inboxIds = async () => ((await readInbox(s.url, bob)).body.items as { id: number }[]).map((i) => i.id)

    // Old items (a Welcome and key events), then, past retention, newer ones.
    await addBob()
    const old = await inboxIds()
    assert.ok(old.length >= 2)
    assert.equal((await readInbox(s.url, bob)).body.expired, undefined)
    s.clock.advance(2 * hour)
    await addBob()
    const gc = await s.app.delivery.collectGarbage()
    assert.equal(gc.inboxItems, old.length)
    assert.deepEqual(gc.expiredDevices, [(await s.app.store.account("bob"))!.devices[0]!.deviceId])

    const first = { count: old.length, through: Math.max(...old) }
    const fresh = (await inboxIds()).filter((id) => !old.includes(id))
    for (let read = 0; read < 2; read++) {
      const r = await readInbox(s.url, bob)
      assert.deepEqual(r.body.expired, first, `read ${read}: the report stays until acknowledged`)
      assert.deepEqual(
        (r.body.items as { id: number }[]).map((i) => i.id),
        fresh,
      )
    }

    // The stream says it before any inbox item or entry, once; then live when more expire.
    const stream = await StreamClient.connect(s.url, bob.token)
    t.after(() => stream.close())
    await stream.until(() => stream.caughtUp(), "caughtUp")
    assert.deepEqual(stream.frames[0], { type: "inboxExpired", ...first })
    assert.equal(stream.inboxExpired().length, 1)
    assert.deepEqual(
      stream.inbox().map((f) => f.id),
      fresh,
    )
    s.clock.advance(2 * hour)
    const gc2 = await s.app.delivery.collectGarbage()
    assert.equal(gc2.inboxItems, fresh.length)
    const second = { count: old.length + fresh.length, through: Math.max(...fresh) }
    await stream.until(() => stream.inboxExpired().length === 2, "the live report")
    assert.deepEqual(stream.inboxExpired()[1], { type: "inboxExpired", ...second })

    // An acknowledgement short of `through` leaves the report; one that reaches it clears it.
    assert.equal((await ackInbox(s.url, bob, first.through)).status, 200)
    assert.deepEqual((await readInbox(s.url, bob)).body.expired, second)
    assert.equal((await ackInbox(s.url, bob, second.through)).status, 200)
    assert.equal((await readInbox(s.url, bob)).body.expired, undefined)
    assert.equal((await s.app.delivery.collectGarbage()).inboxItems, 0)
    assert.equal((await readInbox(s.url, bob)).body.expired, undefined)
    const again = await StreamClient.connect(s.url, bob.token, { inboxAfter: second.through })
    t.after(() => again.close())
    await again.until(() => again.caughtUp(), "caughtUp")
    assert.equal(again.inboxExpired().length, 0, "a cleared report is not sent again")

    // The next expiry counts from zero.
    await addBob()
    const third = await inboxIds()
    s.clock.advance(2 * hour)
    await s.app.delivery.collectGarbage()
    assert.deepEqual((await readInbox(s.url, bob)).body.expired, { count: third.length, through: Math.max(...third) })
  })

  it("sends the report before the entries of a group whose Welcome expired, then those entries, on one catch-up", async (t) => {
    const s = await startServer(t, config)
    const alice = await newUser(s.url, "alice")
    const bob = await newUser(s.url, "bob")
    await withKeys(s, bob, 1)
    const g = await createGroup(s.url, alice)
    const add = await postCommit(s.url, alice, g, {
      keyPackages: [await reserve(s.url, alice, "bob")],
      welcome: fakeWelcome(),
    })
    assert.equal(add.status, 201)
    const lost = ((await readInbox(s.url, bob)).body.items as { id: number }[]).map((i) => i.id)
    s.clock.advance(2 * hour)
    const seqs = [await post(s, alice, g), await post(s, alice, g), await post(s, alice, g)]
    assert.equal((await s.app.delivery.collectGarbage()).inboxItems, lost.length)

    const stream = await StreamClient.connect(s.url, bob.token)
    t.after(() => stream.close())
    await stream.until(() => stream.caughtUp(), "caughtUp")
    assert.deepEqual(stream.frames[0], { type: "inboxExpired", count: lost.length, through: Math.max(...lost) })
    assert.deepEqual(
      stream.frames.slice(1).map((f) => (f.type === "entry" ? f.seq : f.type)),
      [...seqs, "caughtUp"],
    )
  })
})
