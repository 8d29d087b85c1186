import assert from "node:assert/strict"
import { describe, it } from "node:test"
import { createGroup, postCommit, postMessage, reserve, type TestGroup } from "../helpers/groups.js"
import { fakeMessage, fakeWelcome } from "../helpers/mls.js"
import { seededRandom } from "../helpers/random.js"
import { startServer, untilStreamConnections } from "../helpers/server.js"
import { StreamClient } from "../helpers/stream.js"
import { makeEncodedKeyPackages, newUser, uploadKeyPackages, type TestUser } from "../helpers/users.js"

const unlimited = { postBurst: 1e9, postPerMinute: 1e9 }

/** Posts `n` messages, a Commit every 10th, application messages in parallel between Commits. */
async function postMixed(base: string, user: TestUser, g: TestGroup, n: number): Promise<void> {
  for (let sent = 0; sent < n;) {
    const r = await postCommit(base, user, g)
    assert.equal(r.status, 201)
    sent++
    const batch = Math.min(9, n - sent)
    const posted = await Promise.all(Array.from({ length: batch }, () => postMessage(base, user, g)))
    assert.ok(posted.every((p) => p.status === 201))
    sent += batch
  }
}

async function groupWith(base: string, owner: TestUser, member: TestUser, now: number): Promise<TestGroup> {
  await uploadKeyPackages(base, member, await makeEncodedKeyPackages(member, 1, { now }))
  const g = await createGroup(base, owner)
  const r = await postCommit(base, owner, g, {
    keyPackages: [await reserve(base, owner, member.name)],
    welcome: fakeWelcome(),
  })
  assert.equal(r.status, 201)
  return g
}

/** Every entry seq of the group across `clients`, in arrival order. */
const seqs = (clients: StreamClient[], g: TestGroup) => clients.flatMap((c) => c.entries(g.id).map((e) => e.seq))
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)

describe("stream", () => {
  it("delivers 1,000 messages missed offline, and those posted during catch-up, in order and once", async (t) => {
    const s = await startServer(t, unlimited)
    const alice = await newUser(s.url, "alice")
    const bob = await newUser(s.url, "bob")
    const g = await groupWith(s.url, alice, bob, s.clock.now())
    const first = await StreamClient.connect(s.url, bob.token)
    await first.until(() => first.caughtUp(), "caughtUp")
    await first.close()

    await postMixed(s.url, alice, g, 1000)
    const again = await StreamClient.connect(s.url, bob.token, { groups: first.cursors, inboxAfter: first.inboxCursor })
    t.after(() => again.close())
    await postMixed(s.url, alice, g, 200) // while bob catches up
    const last = 1 + 1200
    await again.until(() => again.cursors.get(g.id) === last, "every entry", 30_000)
    assert.deepEqual(seqs([first, again], g), range(2, last))
    const commits = again.entries(g.id).filter((e) => e.kind === "commit")
    assert.deepEqual(
      commits.map((e) => e.epoch),
      range(1, 120),
      "one Commit per epoch",
    )
    assert.ok(again.caughtUp())
  })

  it("resumes from its cursors after 10 random disconnects during 2,000 messages: each once, in order", async (t) => {
    const s = await startServer(t, unlimited)
    const alice = await newUser(s.url, "alice")
    const bob = await newUser(s.url, "bob")
    const g = await groupWith(s.url, alice, bob, s.clock.now())
    const random = seededRandom(t)
    const total = 2000
    const last = 1 + total
    const poster = (async () => {
      for (let i = 0; i < total; i += 20) {
        await Promise.all(Array.from({ length: 20 }, () => postMessage(s.url, alice, g)))
      }
    })()
    const clients: StreamClient[] = []
    let cursors = new Map<string, number>()
    let inbox = 0
    for (let cut = 0; cut < 10; cut++) {
      const c = await StreamClient.connect(s.url, bob.token, { groups: cursors, inboxAfter: inbox })
      clients.push(c)
      const stopAt = (cursors.get(g.id) ?? 1) + 50 + random.int(0, 99)
      await c.until(() => (c.cursors.get(g.id) ?? 0) >= Math.min(stopAt, last) || c.closed, "some entries")
      if (cut % 2 === 0) {
        c.ws.send("not json") // the server closes the connection (protocol error)
        await c.until(() => c.closed, "server-side close")
        assert.equal(c.closeCode, 4000)
      } else {
        c.kill()
        await c.until(() => c.closed, "client killed")
      }
      cursors = new Map(c.cursors)
      inbox = c.inboxCursor
    }
    const final = await StreamClient.connect(s.url, bob.token, { groups: cursors, inboxAfter: inbox })
    clients.push(final)
    t.after(() => final.close())
    await poster
    await final.until(() => final.cursors.get(g.id) === last, "every entry", 30_000)
    assert.deepEqual(seqs(clients, g), range(2, last))
  })

  it("disconnects a client that reads too slowly, which then resumes from its cursor", async (t) => {
    const s = await startServer(t, { ...unlimited, wsMaxBufferedBytes: 64 * 1024, maxMessageBytes: 300 * 1024 })
    const alice = await newUser(s.url, "alice")
    const bob = await newUser(s.url, "bob")
    const g = await groupWith(s.url, alice, bob, s.clock.now())
    const slow = await StreamClient.connect(s.url, bob.token)
    await slow.until(() => slow.caughtUp(), "caughtUp")
    const socket = (slow.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket
    socket.pause()
    let posted = 0
    // Large messages fill the kernel buffers, then the server's; past 64 KiB it cuts the connection.
    while (s.app.hub.connectionCount > 0) {
      assert.ok(posted < 200, "the slow client was never disconnected")
      assert.equal((await postMessage(s.url, alice, g, fakeMessage(g.bytes, 1, "application", 200_000))).status, 201)
      posted++
    }
    socket.resume()
    await slow.until(() => slow.closed, "the cut reaches the client")
    const resumed = await StreamClient.connect(s.url, bob.token, { groups: slow.cursors, inboxAfter: slow.inboxCursor })
    t.after(() => resumed.close())
    await resumed.until(() => resumed.cursors.get(g.id) === 1 + posted, "the rest")
    assert.deepEqual(seqs([slow, resumed], g), range(2, 1 + posted))
  })

  it("drops a connection that stops answering pings", async (t) => {
    const s = await startServer(t, { wsPingIntervalMs: 20 })
    const bob = await newUser(s.url, "bob")
    const c = await StreamClient.connect(s.url, bob.token)
    t.after(() => c.kill())
    await c.until(() => c.caughtUp(), "caughtUp")
    assert.equal(s.app.hub.connectionCount, 1)
    ;(c.ws as unknown as { _socket: { pause(): void } })._socket.pause() // no more pongs
    await untilStreamConnections(s, 0)
  })

  it("starts streaming a group live to a member added while connected, after its Welcome", async (t) => {
    const s = await startServer(t)
    const alice = await newUser(s.url, "alice")
    const bob = await newUser(s.url, "bob")
    await uploadKeyPackages(s.url, bob, await makeEncodedKeyPackages(bob, 1, { now: s.clock.now() }))
    const aliceStream = await StreamClient.connect(s.url, alice.token)
    const bobStream = await StreamClient.connect(s.url, bob.token)
    t.after(() => Promise.all([aliceStream.close(), bobStream.close()]))
    await bobStream.until(() => bobStream.caughtUp(), "caughtUp")
    const g = await createGroup(s.url, alice)
    await postMessage(s.url, alice, g)
    const add = await postCommit(s.url, alice, g, {
      keyPackages: [await reserve(s.url, alice, "bob")],
      welcome: fakeWelcome(),
    })
    const next = await postMessage(s.url, alice, g)
    await bobStream.until(() => bobStream.entries(g.id).length === 1, "the live entry")
    const welcomeAt = bobStream.frames.findIndex((f) => f.type === "inbox" && f.item.kind === "welcome")
    const entryAt = bobStream.frames.findIndex((f) => f.type === "entry")
    assert.ok(welcomeAt >= 0 && welcomeAt < entryAt)
    assert.equal(bobStream.entries(g.id)[0]!.seq, next.body.seq)
    assert.equal(next.body.seq, add.body.seq + 1)
    await aliceStream.until(() => aliceStream.cursors.get(g.id) === next.body.seq, "alice sees her group live")
    assert.deepEqual(
      aliceStream.entries(g.id).map((e) => e.seq),
      [1, 2, 3],
    )
  })
})
