/**
 * Several mls-server instances on one PostgreSQL database (the embedded test cluster, helpers/postgres.ts): a client
 * may talk to any of them. Streams hear what the other instance stored (the doorbell), daemons on different instances
 * chat and invite, concurrent reservers never get one key twice and concurrent committers never fork an epoch, and an
 * instance killed with SIGKILL under load loses nothing it acknowledged.
 */
import assert from "node:assert/strict"
import { randomBytes } from "node:crypto"
import { once } from "node:events"
import { describe, it, type TestContext } from "node:test"
import { toBase64Url } from "../../rpc-schema/common.js"
import type { ServerConfig } from "../../server/config.js"
import { registered } from "../helpers/chat.js"
import { createGroup, postCommit, readLog, reserve, type TestGroup } from "../helpers/groups.js"
import { http } from "../helpers/http.js"
import { fakeCommit, fakeMessage, fakeWelcome } from "../helpers/mls.js"
import { freshDatabase } from "../helpers/postgres.js"
import { startServer, type TestServer } from "../helpers/server.js"
import { spawnServer, type ServerProcess } from "../helpers/spawnServer.js"
import { StreamClient } from "../helpers/stream.js"
import { makeEncodedKeyPackages, newUser, register, uploadKeyPackages, type TestUser } from "../helpers/users.js"

/** Two in-process instances on one fresh database. */
async function twoInstances(t: TestContext, overrides: Partial<ServerConfig> = {}): Promise<[TestServer, TestServer]> {
  const dbPath = await freshDatabase()
  return [await startServer(t, { ...overrides, dbPath }), await startServer(t, { ...overrides, dbPath })]
}

const post = (base: string, user: TestUser, g: TestGroup, message: string, clientId?: string) =>
  http(base, "POST", `/v1/groups/${g.id}/messages`, {
    token: user.token,
    json: { message, ...(clientId !== undefined && { clientId }) },
  })

/** `user` joins `g` (at alice's hands) through the instance `via`: a key reserved there, the Commit posted there. */
async function addMember(via: string, alice: TestUser, user: TestUser, g: TestGroup): Promise<void> {
  await uploadKeyPackages(via, user, await makeEncodedKeyPackages(user, 1))
  const r = await postCommit(via, alice, g, {
    keyPackages: [await reserve(via, alice, user.name)],
    welcome: fakeWelcome(),
  })
  assert.equal(r.status, 201, JSON.stringify(r.body))
}

/** The whole log of `g` as `user` reads it. */
async function wholeLog(base: string, user: TestUser, g: TestGroup) {
  const entries: { seq: number; epoch: number; kind: string; message: string }[] = []
  for (let after = 0; ;) {
    const page = (await readLog(base, user, g, after)).body.entries as typeof entries
    if (page.length === 0) return entries
    entries.push(...page)
    after = page.at(-1)!.seq
  }
}

describe("several instances on one PostgreSQL", () => {
  it("streams what the other instance stored, in log order, and catches up on either after a reconnect", async (t) => {
    const [a, b] = await twoInstances(t)
    const alice = await newUser(a.url, "alice")
    const bob = await newUser(b.url, "bob")
    const g = await createGroup(a.url, alice)
    const bobStream = await StreamClient.connect(b.url, bob.token)
    t.after(() => bobStream.close())
    await addMember(a.url, alice, bob, g)
    // The Welcome written on A reaches bob's stream on B, and with it the group.
    await bobStream.until(() => bobStream.inbox().some((f) => f.item.kind === "welcome"), "the Welcome via B")

    const sent: string[] = []
    const postSome = async (n: number) => {
      // Concurrent posts through both instances.
      await Promise.all(
        Array.from({ length: n }, async (_, i) => {
          const message = fakeMessage(g.bytes, g.epoch)
          const r = await post(i % 2 === 0 ? a.url : b.url, alice, g, message)
          assert.equal(r.status, 201)
          sent.push(message)
        }),
      )
    }
    await postSome(60)
    const seqs = (c: StreamClient) => c.entries(g.id).map((e) => e.seq)
    await bobStream.until(() => bobStream.cursors.get(g.id) === 61, "every message, live, via B")
    // bob reads after the Commit that added him (seq 1).
    assert.deepEqual(
      seqs(bobStream),
      Array.from({ length: 60 }, (_, i) => i + 2),
      "each entry once, in order",
    )

    // Reconnect to the other instance from the cursors; what was posted meanwhile comes as catch-up.
    const cursors = new Map(bobStream.cursors)
    const inboxAfter = bobStream.inboxCursor
    await bobStream.close()
    await postSome(20)
    const again = await StreamClient.connect(a.url, bob.token, { groups: cursors, inboxAfter })
    t.after(() => again.close())
    await again.until(() => again.cursors.get(g.id) === 81, "the catch-up via A")
    await postSome(20)
    await again.until(() => again.cursors.get(g.id) === 101, "live again via A")
    assert.deepEqual(
      seqs(again),
      Array.from({ length: 40 }, (_, i) => i + 62),
    )
    const messages = (await wholeLog(a.url, bob, g)).filter((e) => e.kind === "application").map((e) => e.message)
    assert.deepEqual(new Set(messages), new Set(sent))
  })

  it("stores a post retried on both instances at once once, and answers every try with its seq", async (t) => {
    const [a, b] = await twoInstances(t)
    const alice = await newUser(a.url, "alice")
    const g = await createGroup(a.url, alice)
    for (let i = 0; i < 5; i++) {
      const message = fakeMessage(g.bytes, g.epoch)
      const clientId = toBase64Url(randomBytes(16))
      const answers = await Promise.all(
        Array.from({ length: 6 }, (_, j) => post(j % 2 === 0 ? a.url : b.url, alice, g, message, clientId)),
      )
      for (const r of answers) assert.equal(r.status, 201, JSON.stringify(r.body))
      assert.equal(new Set(answers.map((r) => r.body.seq)).size, 1, "one seq for every try")
    }
    const log = await wholeLog(b.url, alice, g)
    assert.deepEqual(
      log.map((e) => e.seq),
      [1, 2, 3, 4, 5],
      "each post stored once",
    )
  })

  it("holds a rate limit across instances: one budget however the requests are spread", async (t) => {
    const [a, b] = await twoInstances(t, { registerIpBurst: 3, registerIpPerMinute: 1 })
    await newUser(a.url, "u1")
    await newUser(b.url, "u2")
    await newUser(a.url, "u3")
    for (const s of [a, b]) {
      const r = await register(s.url, "u4")
      assert.equal(r.status, 429, JSON.stringify(r.body))
      assert.equal(r.body.error.code, "rate_limited")
    }
    // The clocks move on together: a minute later the shared bucket has one token again, on either instance.
    a.clock.advance(60_000)
    b.clock.advance(60_000)
    await newUser(b.url, "u4")
  })

  it("takes each request's budgets all or nothing when many requests draw on them at once", async (t) => {
    const limits = { reserveBurst: 5, reserveTargetBurst: 8, reserveStrangerBurst: 100 }
    const [a, b] = await twoInstances(t, {
      ...limits,
      reservePerMinute: 1,
      reserveTargetPerMinute: 1,
      reserveStrangerPerMinute: 1,
    })
    const owner = await newUser(a.url, "owner")
    await uploadKeyPackages(a.url, owner, await makeEncodedKeyPackages(owner, 20))
    const reserveMany = async (requester: TestUser) => {
      const answers = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          http([a.url, b.url][i % 2]!, "POST", "/v1/keypackages/reserve", {
            token: requester.token,
            json: { target: "owner" },
          }),
        ),
      )
      for (const r of answers) if (r.status !== 201) assert.equal(r.body.error.code, "rate_limited")
      return answers.filter((r) => r.status === 201).length
    }
    // r1's own budget for owner's keys is 5: its other 5 are refused, and take nothing of owner's budget of 8...
    assert.equal(await reserveMany(await newUser(a.url, "r1")), 5)
    // ...so 3 are left of it for r2.
    assert.equal(await reserveMany(await newUser(b.url, "r2")), 3)
  })

  it("closes a stream on one instance when its session is revoked on the other, and refuses the token there", async (t) => {
    const [a, b] = await twoInstances(t)
    const alice = await newUser(a.url, "alice")
    const inbox = () => http(b.url, "GET", "/v1/inbox", { token: alice.token })
    assert.equal((await inbox()).status, 200, "B knows (and keeps) the session")
    const stream = await StreamClient.connect(b.url, alice.token)
    await stream.until(() => stream.frames.some((f) => f.type === "caughtUp"), "caught up")
    assert.equal((await http(a.url, "DELETE", "/v1/sessions", { token: alice.token })).status, 200)
    await stream.until(() => stream.closed, "the stream on B closes")
    assert.equal(stream.closeCode, 4001)
    const after = await inbox()
    assert.equal(after.status, 401, "B heard the revocation before closing the stream")
    assert.equal(after.body.error.code, "unauthenticated")
  })

  it("lets daemons on different instances chat and invite each other, each instance on one pooled connection", async (t) => {
    // --db-connections 1: nothing may wait for a second pooled connection while it holds one, or this hangs.
    const [a, b] = await twoInstances(t, { dbConnections: 1 })
    const alice = await registered(t, a.url, "alice")
    const bob = await registered(t, b.url, "bob")
    const carol = await registered(t, a.url, "carol")
    const g = await alice.client.call("group.create", { name: "across" })
    const bobJoined = bob.client.next("group.joined", (p) => p.groupId === g.groupId, 20_000)
    await alice.client.call("group.invite", { group: g.groupId, user: "bob" })
    await bobJoined
    // bob (on B) invites carol (on A).
    const carolJoined = carol.client.next("group.joined", (p) => p.groupId === g.groupId, 20_000)
    await bob.client.call("group.invite", { group: g.groupId, user: "carol" })
    await carolJoined
    for (const [from, to] of [
      [alice, [bob, carol]],
      [bob, [alice, carol]],
      [carol, [alice, bob]],
    ] as const) {
      const text = `hello from ${from.profile}`
      const heard = to.map((d) => d.client.next("message.received", (p) => p.text === text, 20_000))
      await from.client.call("message.send", { group: g.groupId, text })
      await Promise.all(heard)
    }
  })

  it("never hands one key out twice, nor stores two Commits of one epoch, under load spread over both", async (t) => {
    const [a, b] = await twoInstances(t)
    const urls = [a.url, b.url]
    const owners = await Promise.all(["o1", "o2", "o3", "o4"].map((n, i) => newUser(urls[i % 2]!, n)))
    const perOwner = 25
    for (const o of owners) await uploadKeyPackages(a.url, o, await makeEncodedKeyPackages(o, perOwner))
    const requesters = await Promise.all(Array.from({ length: 8 }, (_, i) => newUser(urls[i % 2]!, `r${i}`)))

    // Every requester reserves every owner's keys, through alternating instances, until none is left.
    const handed: string[] = []
    await Promise.all(
      requesters.map(async (r, i) => {
        for (let n = 0; ; n++) {
          const target = owners[(i + n) % owners.length]!.name
          const res = await http(urls[n % 2]!, "POST", "/v1/keypackages/reserve", {
            token: r.token,
            json: { target },
          })
          if (res.status === 201) handed.push(res.body.ref as string)
          else if (res.body.error.code !== "no_keypackage_available") assert.fail(JSON.stringify(res.body))
          // Bounded: each try either takes a key or finds an owner drained; 400 keys in all.
          if (handed.length >= owners.length * perOwner || n > owners.length * perOwner * 2) return
        }
      }),
    )
    assert.equal(handed.length, owners.length * perOwner, "every key handed out")
    assert.equal(new Set(handed).size, handed.length, "none twice")

    // Commits: three members post Commits of the current epoch at once, through both instances.
    const [alice, bob, carol] = requesters as unknown as [TestUser, TestUser, TestUser]
    const g = await createGroup(a.url, alice)
    await addMember(b.url, alice, bob, g)
    await addMember(a.url, alice, carol, g)
    for (let round = 0; round < 20; round++) {
      const epoch = g.epoch
      const results = await Promise.all(
        [alice, bob, carol, alice, bob, carol].map((m, i) =>
          postCommit(urls[i % 2]!, m, { ...g }, { commit: fakeCommit(g.bytes, epoch) }),
        ),
      )
      const accepted = results.filter((r) => r.status === 201)
      assert.equal(accepted.length, 1, `one Commit of epoch ${epoch}`)
      for (const r of results) if (r.status !== 201) assert.equal(r.body.error.code, "epoch_conflict")
      g.epoch = epoch + 1
    }
    const commits = (await wholeLog(b.url, alice, g)).filter((e) => e.kind === "commit").map((e) => e.epoch)
    assert.deepEqual(
      commits,
      Array.from({ length: 22 }, (_, i) => i),
      "one Commit per epoch, in epoch order",
    )
  })

  it("loses nothing acknowledged when one of two instances is killed with SIGKILL under load", async (t) => {
    const dbPath = await freshDatabase()
    const args = ["--db", dbPath, "--log-level", "error", "--post-burst", "1e9", "--post-rate", "1e9"]
    const servers: ServerProcess[] = [await spawnServer(args), await spawnServer(args)]
    t.after(() => Promise.all(servers.map((s) => s.stop())))
    const [victim, survivor] = servers as [ServerProcess, ServerProcess]
    const alice = await newUser(victim.url, "alice")
    const bob = await newUser(survivor.url, "bob")
    const g = await createGroup(victim.url, alice)
    await addMember(victim.url, alice, bob, g)
    const bobStream = await StreamClient.connect(survivor.url, bob.token)
    t.after(() => bobStream.close())

    const acked = new Map<number, string>()
    let posting = true
    const posters = Array.from({ length: 8 }, async (_, i) => {
      const url = i % 2 === 0 ? victim.url : survivor.url
      while (posting) {
        const message = fakeMessage(g.bytes, g.epoch, "application", 200)
        const r = await post(url, alice, g, message, toBase64Url(randomBytes(16))).catch(() => undefined)
        if (r?.status === 201) acked.set(r.body.seq, message)
        // The victim is gone: its posters stop, the survivor's go on.
        if (!r && url === victim.url) return
      }
    })
    await bobStream.until(() => acked.size >= 300, "acknowledged posts", 30_000)
    victim.child.kill("SIGKILL")
    await once(victim.child, "exit")
    const after = acked.size
    await bobStream.until(() => acked.size >= after + 100, "posts via the survivor", 30_000)
    posting = false
    await Promise.all(posters)

    const entries = await wholeLog(survivor.url, alice, g)
    const stored = new Map(entries.map((e) => [e.seq, e.message]))
    for (const [seq, message] of acked) assert.equal(stored.get(seq), message, `acknowledged seq ${seq} is stored`)
    assert.deepEqual(
      entries.map((e) => e.seq),
      Array.from({ length: entries.length }, (_, i) => i + 1),
    )
    const last = entries.at(-1)!.seq
    await bobStream.until(() => bobStream.cursors.get(g.id) === last, "bob's stream on the survivor has it all")
    assert.deepEqual(
      bobStream.entries(g.id).map((e) => e.seq),
      Array.from({ length: last - 1 }, (_, i) => i + 2),
      "each entry after the Commit that added bob once, in order",
    )
  })
})
