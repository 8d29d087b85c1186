import assert from "node:assert/strict"
import { describe, it } from "node:test"
import { randomBytes } from "node:crypto"
import {
  createApplicationMessage,
  createCommit,
  createGroup as mlsCreateGroup,
  emptyPskIndex,
  generateKeyPackageWithKey,
  defaultCapabilities,
  joinGroup,
  processPrivateMessage,
} from "ts-mls"
import { encodeKeyPackage } from "ts-mls/keyPackage.js"
import { decodeMlsMessage, encodeMlsMessage } from "ts-mls/message.js"
import { fromBase64Url, toBase64Url } from "../../rpc-schema/common.js"
import { rowCounts } from "../helpers/db.js"
import { createGroup, postCommit, postMessage, readLog, reserve } from "../helpers/groups.js"
import { http } from "../helpers/http.js"
import { fakeCommit, fakeMessage, fakeWelcome, newGroupId } from "../helpers/mls.js"
import { startServer } from "../helpers/server.js"
import { StreamClient } from "../helpers/stream.js"
import { makeEncodedKeyPackages, newUser, testSuite, uploadKeyPackages, type TestUser } from "../helpers/users.js"

const unlimited = { postBurst: 1e9, postPerMinute: 1e9 }

async function withKeys(base: string, user: TestUser, n: number, now: number) {
  const r = await uploadKeyPackages(base, user, await makeEncodedKeyPackages(user, n, { now }))
  assert.equal(r.status, 200)
}

describe("delivery: Commits", () => {
  it("accepts exactly one of 5 concurrent Commits per epoch for 20 rounds", async (t) => {
    const s = await startServer(t, unlimited)
    const alice = await newUser(s.url, "alice")
    const g = await createGroup(s.url, alice)
    for (let round = 0; round < 20; round++) {
      const epoch = g.epoch
      const results = await Promise.all(
        Array.from({ length: 5 }, () => postCommit(s.url, alice, { ...g }, { commit: fakeCommit(g.bytes, epoch) })),
      )
      const accepted = results.filter((r) => r.status === 201)
      const refused = results.filter((r) => r.status === 409)
      assert.equal(accepted.length, 1, `round ${round}: one accepted`)
      assert.equal(refused.length, 4, `round ${round}: four refused`)
      for (const r of refused) {
        assert.equal(r.body.error.code, "epoch_conflict")
        assert.equal(r.body.error.details.currentEpoch, epoch + 1)
      }
      g.epoch = epoch + 1
    }
    const log = await readLog(s.url, alice, g)
    assert.deepEqual(
      log.body.entries.map((e: { epoch: number; kind: string }) => [e.kind, e.epoch]),
      Array.from({ length: 20 }, (_, i) => ["commit", i]),
    )
    assert.deepEqual(
      log.body.entries.map((e: { seq: number }) => e.seq),
      Array.from({ length: 20 }, (_, i) => i + 1),
    )
    const info = await http(s.url, "GET", `/v1/groups/${g.id}`, { token: alice.token })
    assert.equal(info.body.epoch, 20)
  })

  it("refuses a Commit whole when one reservation is expired or foreign", async (t) => {
    const s = await startServer(t)
    const [alice, bob, carol, dave] = await Promise.all(["alice", "bob", "carol", "dave"].map((n) => newUser(s.url, n)))
    await withKeys(s.url, bob!, 3, s.clock.now())
    await withKeys(s.url, carol!, 3, s.clock.now())
    const g = await createGroup(s.url, alice!)
    const carolKey = await reserve(s.url, alice!, "carol")
    s.clock.advance(61_000) // carol's reservation lapses
    const bobKey = await reserve(s.url, alice!, "bob")
    const davesCarolKey = await reserve(s.url, dave!, "carol")
    const before = await rowCounts(s.app.store)

    const cases: [string, (typeof bobKey)[], number, string][] = [
      ["expired", [bobKey, carolKey], 410, "reservation_expired"],
      ["foreign", [bobKey, davesCarolKey], 403, "forbidden"],
      ["owner mismatch", [{ ...bobKey, user: "carol" }], 409, "reservation_invalid"],
    ]
    for (const [what, keyPackages, status, code] of cases) {
      const r = await postCommit(s.url, alice!, g, { keyPackages, welcome: fakeWelcome() })
      assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`)
      assert.equal(r.body.error.code, code, what)
    }
    assert.deepEqual(await rowCounts(s.app.store), before, "nothing spent, no roster change, no Welcome, no log entry")
    const info = await http(s.url, "GET", `/v1/groups/${g.id}`, { token: alice!.token })
    assert.deepEqual([info.body.epoch, info.body.members], [0, ["alice"]])

    const ok = await postCommit(s.url, alice!, g, { keyPackages: [bobKey], welcome: fakeWelcome() })
    assert.equal(ok.status, 201, "the valid reservation was never spent")
    const inbox = await http(s.url, "GET", "/v1/inbox", { token: bob!.token })
    const kinds = inbox.body.items.map((i: { item: { kind: string } }) => i.item.kind)
    // alice's reservation (3 keys are under the low watermark of 8), then the Commit's spend and Welcome.
    assert.deepEqual(kinds, ["keyReserved", "poolLow", "keySpent", "welcome"])
  })

  it("carries a real ts-mls group: add by Commit and Welcome, then an application message", async (t) => {
    const s = await startServer(t)
    const alice = await newUser(s.url, "alice")
    const bob = await newUser(s.url, "bob")
    const cs = await testSuite()
    const kp = async (u: TestUser) =>
      generateKeyPackageWithKey(
        { credentialType: "basic", identity: new TextEncoder().encode(u.name) },
        defaultCapabilities(),
        {
          notBefore: BigInt(Math.floor(s.clock.now() / 1000) - 60),
          notAfter: BigInt(Math.floor(s.clock.now() / 1000) + 86_400),
        },
        [],
        { signKey: u.seed, publicKey: u.publicKey },
        cs,
      )
    const aliceKp = await kp(alice)
    const bobKp = await kp(bob)
    await uploadKeyPackages(s.url, bob, [toBase64Url(encodeKeyPackage(bobKp.publicPackage))])
    const { bytes: groupIdBytes, id: groupId } = newGroupId()
    let aliceState = await mlsCreateGroup(groupIdBytes, aliceKp.publicPackage, aliceKp.privatePackage, [], cs)
    assert.equal((await http(s.url, "POST", "/v1/groups", { token: alice.token, json: { groupId } })).status, 201)

    const bobStream = await StreamClient.connect(s.url, bob.token)
    t.after(() => bobStream.close())
    const key = await reserve(s.url, alice, "bob")
    const add = await createCommit(
      { state: aliceState, cipherSuite: cs },
      {
        extraProposals: [{ proposalType: "add", add: { keyPackage: bobKp.publicPackage } }],
        ratchetTreeExtension: true,
      },
    )
    aliceState = add.newState
    const commitR = await http(s.url, "POST", `/v1/groups/${groupId}/commits`, {
      token: alice.token,
      json: {
        commit: toBase64Url(encodeMlsMessage(add.commit)),
        keyPackages: [key],
        removes: [],
        welcome: toBase64Url(encodeMlsMessage({ version: "mls10", wireformat: "mls_welcome", welcome: add.welcome! })),
      },
    })
    assert.equal(commitR.status, 201, JSON.stringify(commitR.body))
    assert.deepEqual([commitR.body.epoch, commitR.body.newEpoch], [0, 1])

    await bobStream.until(() => bobStream.inbox().some((f) => f.item.kind === "welcome"), "welcome")
    const w = bobStream.inbox().find((f) => f.item.kind === "welcome")!.item
    assert.ok(w.kind === "welcome")
    const welcomeMsg = decodeMlsMessage(fromBase64Url(w.welcome), 0)![0]
    assert.ok(welcomeMsg.wireformat === "mls_welcome")
    const bobState = await joinGroup(welcomeMsg.welcome, bobKp.publicPackage, bobKp.privatePackage, emptyPskIndex, cs)

    const app = await createApplicationMessage(aliceState, new TextEncoder().encode("hello bob"), cs)
    const encoded = toBase64Url(
      encodeMlsMessage({ version: "mls10", wireformat: "mls_private_message", privateMessage: app.privateMessage }),
    )
    const post = await http(s.url, "POST", `/v1/groups/${groupId}/messages`, {
      token: alice.token,
      json: { message: encoded },
    })
    assert.deepEqual(post.body, { seq: 2, epoch: 1 })
    await bobStream.until(() => bobStream.entries(groupId).length === 1, "the application message")
    const entry = bobStream.entries(groupId)[0]!
    assert.equal(entry.seq, 2, "a new member's log starts after the Commit that added it")
    const pm = decodeMlsMessage(fromBase64Url(entry.message), 0)![0]
    assert.ok(pm.wireformat === "mls_private_message")
    const got = await processPrivateMessage(bobState, pm.privateMessage, emptyPskIndex, cs)
    assert.ok(got.kind === "applicationMessage")
    assert.equal(new TextDecoder().decode(got.message), "hello bob")
  })
})

describe("delivery: access", () => {
  it("gives a non-member neither posting, reading nor pushes of a group (403)", async (t) => {
    const s = await startServer(t)
    const alice = await newUser(s.url, "alice")
    const eve = await newUser(s.url, "eve")
    const g = await createGroup(s.url, alice)
    const eveStream = await StreamClient.connect(s.url, eve.token, { groups: new Map([[g.id, 0]]) })
    t.after(() => eveStream.close())
    await eveStream.until(() => eveStream.caughtUp(), "caughtUp")

    const post = await postMessage(s.url, eve, g)
    const commit = await postCommit(s.url, eve, g)
    const log = await readLog(s.url, eve, g)
    const info = await http(s.url, "GET", `/v1/groups/${g.id}`, { token: eve.token })
    for (const r of [post, commit, log, info]) {
      assert.equal(r.status, 403)
      assert.equal(r.body.error.code, "not_member")
    }
    assert.equal((await postMessage(s.url, alice, g)).status, 201)
    const err = eveStream.frames.find((f) => f.type === "error")
    assert.ok(err && err.type === "error" && err.code === "not_member" && err.groupId === g.id)
    // Bounded by a frame eve does receive: a key event written after alice's message.
    await withKeys(s.url, eve, 1, s.clock.now())
    await reserve(s.url, alice, "eve")
    await eveStream.until(() => eveStream.inbox().length > 0, "eve's own inbox item")
    assert.equal(eveStream.entries().length, 0, "no entry of alice's group was pushed to eve")
  })

  it("sends a removed member the removal notice and nothing after it", async (t) => {
    const s = await startServer(t)
    const [alice, bob, carol] = await Promise.all(["alice", "bob", "carol"].map((n) => newUser(s.url, n)))
    await withKeys(s.url, bob!, 2, s.clock.now())
    await withKeys(s.url, carol!, 2, s.clock.now())
    const g = await createGroup(s.url, alice!)
    for (const u of ["bob", "carol"]) {
      const r = await postCommit(s.url, alice!, g, {
        keyPackages: [await reserve(s.url, alice!, u)],
        welcome: fakeWelcome(),
      })
      assert.equal(r.status, 201)
    }
    const bobStream = await StreamClient.connect(s.url, bob!.token)
    const carolStream = await StreamClient.connect(s.url, carol!.token)
    t.after(() => Promise.all([bobStream.close(), carolStream.close()]))
    await bobStream.until(() => bobStream.caughtUp(), "bob caught up")
    await postMessage(s.url, alice!, g)
    const removal = await postCommit(s.url, alice!, g, { removes: ["bob"] })
    assert.equal(removal.status, 201)
    const after = await postMessage(s.url, alice!, g)
    await carolStream.until(
      () => carolStream.entries(g.id).some((e) => e.seq === after.body.seq),
      "carol sees the last",
    )
    await bobStream.until(() => bobStream.inbox().some((f) => f.item.kind === "removed"), "removal notice")

    const bobFrames = bobStream.frames.filter(
      (f) => f.type === "entry" || (f.type === "inbox" && f.item.kind === "removed"),
    )
    const last = bobFrames.at(-1)!
    assert.ok(last.type === "inbox" && last.item.kind === "removed" && last.item.seq === removal.body.seq)
    // Bob joined with the first Commit (seq 1): carol's add, alice's message and his removal follow.
    assert.deepEqual(
      bobStream.entries(g.id).map((e) => e.seq),
      [2, 3, removal.body.seq],
      "bob gets entries up to and including the Commit that removed him",
    )
    assert.equal((await postMessage(s.url, bob!, g)).body.error.code, "not_member")
    const log = await readLog(s.url, bob!, g)
    assert.equal(log.body.entries.at(-1).seq, removal.body.seq, "bob reads up to his removal, not after")
  })

  it("keeps a Welcome for an offline user in its inbox and delivers it on connect", async (t) => {
    const s = await startServer(t)
    const alice = await newUser(s.url, "alice")
    const bob = await newUser(s.url, "bob")
    await withKeys(s.url, bob, 1, s.clock.now())
    const g = await createGroup(s.url, alice)
    await postMessage(s.url, alice, g)
    const add = await postCommit(s.url, alice, g, {
      keyPackages: [await reserve(s.url, alice, "bob")],
      welcome: fakeWelcome(),
    })
    for (let i = 0; i < 3; i++) await postMessage(s.url, alice, g)

    const bobStream = await StreamClient.connect(s.url, bob.token)
    t.after(() => bobStream.close())
    await bobStream.until(() => bobStream.caughtUp(), "caughtUp")
    const welcomeAt = bobStream.frames.findIndex((f) => f.type === "inbox" && f.item.kind === "welcome")
    const firstEntryAt = bobStream.frames.findIndex((f) => f.type === "entry")
    assert.ok(welcomeAt >= 0 && welcomeAt < firstEntryAt, "the Welcome comes before the group's entries")
    assert.deepEqual(
      bobStream.entries(g.id).map((e) => e.seq),
      [add.body.seq + 1, add.body.seq + 2, add.body.seq + 3],
    )
    const ack = await http(s.url, "POST", "/v1/inbox/ack", { token: bob.token, json: { upTo: bobStream.inboxCursor } })
    assert.ok(ack.body.deleted >= 1)
    assert.deepEqual((await http(s.url, "GET", "/v1/inbox", { token: bob.token })).body.items, [])
  })
})

describe("delivery: idempotent posts", () => {
  it("stores a message posted twice with the same clientId once and answers the same seq", async (t) => {
    const s = await startServer(t)
    const [alice, bob] = await Promise.all(["alice", "bob"].map((n) => newUser(s.url, n)))
    await withKeys(s.url, bob!, 1, s.clock.now())
    const g = await createGroup(s.url, alice!)
    await postCommit(s.url, alice!, g, { keyPackages: [await reserve(s.url, alice!, "bob")], welcome: fakeWelcome() })
    const bobStream = await StreamClient.connect(s.url, bob!.token)
    t.after(() => bobStream.close())
    await bobStream.until(() => bobStream.caughtUp(), "bob caught up")

    const clientId = toBase64Url(randomBytes(16))
    const message = fakeMessage(g.bytes, g.epoch)
    const post = (user: TestUser, m = message) =>
      http(s.url, "POST", `/v1/groups/${g.id}/messages`, { token: user.token, json: { message: m, clientId } })
    const first = await post(alice!)
    assert.equal(first.status, 201)
    const again = await Promise.all([post(alice!), post(alice!)])
    for (const r of again) assert.deepEqual([r.status, r.body], [201, first.body])
    // The id is the sender's own: bob's post with the same id is a message of its own.
    const bobs = await post(bob!, fakeMessage(g.bytes, g.epoch))
    assert.equal(bobs.body.seq, first.body.seq + 1)
    // A duplicate is answered even after the sender left the roster.
    await postCommit(s.url, bob!, g, { removes: ["alice"] })
    assert.deepEqual((await post(alice!)).body, first.body)

    const log = await readLog(s.url, bob!, g)
    assert.deepEqual(
      log.body.entries.map((e: { kind: string; sender: string }) => [e.kind, e.sender]),
      [
        ["application", "alice"],
        ["application", "bob"],
        ["commit", "bob"],
      ],
    )
    await bobStream.until(() => bobStream.entries(g.id).length === 3, "bob's stream has all three")
    assert.deepEqual(
      bobStream.entries(g.id).map((e) => e.seq),
      [first.body.seq, first.body.seq + 1, first.body.seq + 2],
      "the duplicates were not streamed",
    )
  })
})

describe("delivery: batch posts", () => {
  it("appends a batch in order in one go, streams it, and answers a repeated batch with the same seqs", async (t) => {
    const s = await startServer(t, unlimited)
    const [alice, bob] = await Promise.all(["alice", "bob"].map((n) => newUser(s.url, n)))
    await withKeys(s.url, bob!, 1, s.clock.now())
    const g = await createGroup(s.url, alice!)
    await postCommit(s.url, alice!, g, { keyPackages: [await reserve(s.url, alice!, "bob")], welcome: fakeWelcome() })
    const bobStream = await StreamClient.connect(s.url, bob!.token)
    t.after(() => bobStream.close())
    await bobStream.until(() => bobStream.caughtUp(), "bob caught up")

    const item = () => ({ message: fakeMessage(g.bytes, g.epoch), clientId: toBase64Url(randomBytes(16)) })
    const batch = (messages: { message: string; clientId: string }[]) =>
      http(s.url, "POST", `/v1/groups/${g.id}/messages/batch`, { token: alice!.token, json: { messages } })
    const items = Array.from({ length: 5 }, item)
    const first = await batch(items)
    assert.equal(first.status, 201)
    const seqs = first.body.results.map((r: { seq: number }) => r.seq)
    assert.deepEqual(seqs, [2, 3, 4, 5, 6], "in the order of the request, after the Commit")

    // Repeated whole, and repeated in part with new items behind: the old ones answer their first seqs.
    assert.deepEqual((await batch(items)).body, first.body)
    const more = [item(), item()]
    const mixed = await batch([items[3]!, items[4]!, ...more])
    assert.deepEqual(
      mixed.body.results.map((r: { seq: number }) => r.seq),
      [5, 6, 7, 8],
    )
    const log = await readLog(s.url, bob!, g)
    assert.deepEqual(
      log.body.entries.map((e: { seq: number; message: string }) => [e.seq, e.message]),
      [...items, ...more].map((it, i) => [i + 2, it.message]),
      "each message once, in order",
    )
    await bobStream.until(() => bobStream.entries(g.id).length === 7, "bob's stream has all seven")
    assert.deepEqual(
      bobStream.entries(g.id).map((e) => e.seq),
      [2, 3, 4, 5, 6, 7, 8],
      "streamed once each, in order",
    )
  })

  it("refuses a batch whole, naming the bad item, and stores nothing of it", async (t) => {
    const s = await startServer(t, { ...unlimited, maxMessageBytes: 4096 })
    const [alice, eve] = await Promise.all(["alice", "eve"].map((n) => newUser(s.url, n)))
    const g = await createGroup(s.url, alice!)
    const other = await createGroup(s.url, alice!)
    const item = (message = fakeMessage(g.bytes, g.epoch)) => ({ message, clientId: toBase64Url(randomBytes(16)) })
    const batch = (user: TestUser, messages: { message: string; clientId: string }[]) =>
      http(s.url, "POST", `/v1/groups/${g.id}/messages/batch`, { token: user.token, json: { messages } })
    const before = await rowCounts(s.app.store)
    const cases: [string, TestUser, { message: string; clientId: string }[], number, string, number?][] = [
      ["a Commit inside", alice!, [item(), item(), item(fakeCommit(g.bytes, 0))], 400, "malformed_message", 2],
      ["another group's message", alice!, [item(fakeMessage(other.bytes, 0)), item()], 400, "malformed_message", 0],
      ["an oversized message", alice!, [item(), item(toBase64Url(randomBytes(6000)))], 413, "message_too_large", 1],
      ["a future epoch", alice!, [item(), item(fakeMessage(g.bytes, 3))], 409, "epoch_conflict", 1],
      ["a non-member", eve!, [item()], 403, "not_member", 0],
      ["no item", alice!, [], 400, "invalid_request"],
      ["an item without clientId", alice!, [{ message: fakeMessage(g.bytes, 0) } as never], 400, "invalid_request"],
    ]
    for (const [what, user, messages, status, code, index] of cases) {
      const r = await batch(user, messages)
      assert.equal(r.status, status, what)
      assert.equal(r.body.error.code, code, what)
      if (index !== undefined) assert.equal(r.body.error.details?.index, index, what)
    }
    assert.deepEqual(await rowCounts(s.app.store), before, "nothing stored")
    assert.equal((await readLog(s.url, alice!, g)).body.lastSeq, 0)
    // The good items of a refused batch go through on their own.
    const ok = await batch(alice!, [item(), item()])
    assert.deepEqual(
      ok.body.results.map((r: { seq: number }) => r.seq),
      [1, 2],
    )
  })
})

describe("delivery: bad input", () => {
  it("answers malformed, unknown, oversized and unauthenticated requests with 4xx and changes nothing", async (t) => {
    const s = await startServer(t, { maxMessageBytes: 4096 })
    const alice = await newUser(s.url, "alice")
    const bob = await newUser(s.url, "bob")
    await withKeys(s.url, bob, 1, s.clock.now())
    const g = await createGroup(s.url, alice)
    const bobKey = await reserve(s.url, alice, "bob")
    assert.equal((await postCommit(s.url, alice, g, { keyPackages: [bobKey], welcome: fakeWelcome() })).status, 201)
    const bobStream = await StreamClient.connect(s.url, bob.token)
    t.after(() => bobStream.close())
    await bobStream.until(() => bobStream.caughtUp(), "caughtUp")
    const before = await rowCounts(s.app.store)
    const other = newGroupId()
    const messages = `/v1/groups/${g.id}/messages`
    const commits = `/v1/groups/${g.id}/commits`
    const commitBody = (commit: string, extra = {}) => ({ commit, keyPackages: [], removes: [], ...extra })

    const cases: [string, "POST" | "GET", string, object, number, string][] = [
      ["random bytes", "POST", messages, { message: toBase64Url(randomBytes(50)) }, 400, "malformed_message"],
      ["trailing bytes", "POST", messages, { message: fakeMessage(g.bytes, 1) + "AAAA" }, 400, "malformed_message"],
      ["a Welcome as message", "POST", messages, { message: fakeWelcome() }, 400, "malformed_message"],
      ["another group's message", "POST", messages, { message: fakeMessage(other.bytes, 1) }, 400, "malformed_message"],
      ["a Commit as message", "POST", messages, { message: fakeCommit(g.bytes, 1) }, 400, "malformed_message"],
      ["future epoch", "POST", messages, { message: fakeMessage(g.bytes, 5) }, 409, "epoch_conflict"],
      [
        "oversized",
        "POST",
        messages,
        { message: fakeMessage(g.bytes, 1, "application", 5000) },
        413,
        "message_too_large",
      ],
      ["not base64", "POST", messages, { message: "***" }, 400, "invalid_request"],
      ["unknown field", "POST", messages, { message: fakeMessage(g.bytes, 1), x: 1 }, 400, "invalid_request"],
      ["app message as Commit", "POST", commits, commitBody(fakeMessage(g.bytes, 1)), 400, "malformed_message"],
      ["stale Commit", "POST", commits, commitBody(fakeCommit(g.bytes, 0)), 409, "epoch_conflict"],
      [
        "Welcome without keys",
        "POST",
        commits,
        commitBody(fakeCommit(g.bytes, 1), { welcome: fakeWelcome() }),
        400,
        "malformed_message",
      ],
      [
        "keys without Welcome",
        "POST",
        commits,
        commitBody(fakeCommit(g.bytes, 1), { keyPackages: [bobKey] }),
        400,
        "malformed_message",
      ],
      [
        "removing a non-member",
        "POST",
        commits,
        commitBody(fakeCommit(g.bytes, 1), { removes: ["carol"] }),
        409,
        "conflict",
      ],
      [
        "removing oneself",
        "POST",
        commits,
        commitBody(fakeCommit(g.bytes, 1), { removes: ["alice"] }),
        409,
        "conflict",
      ],
      [
        "unknown group",
        "POST",
        `/v1/groups/${other.id}/messages`,
        { message: fakeMessage(other.bytes, 0) },
        404,
        "group_not_found",
      ],
      ["unknown group log", "GET", `/v1/groups/${other.id}/log`, {}, 404, "group_not_found"],
      ["bad log cursor", "GET", `/v1/groups/${g.id}/log?after=-1`, {}, 400, "invalid_request"],
      ["bad log limit", "GET", `/v1/groups/${g.id}/log?limit=501`, {}, 400, "invalid_request"],
      ["existing group", "POST", "/v1/groups", { groupId: g.id }, 409, "group_exists"],
    ]
    for (const [what, method, path, json, status, code] of cases) {
      const r = await http(s.url, method, path, { token: alice.token, ...(method === "POST" && { json }) })
      assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`)
      assert.equal(r.body.error.code, code, what)
      assert.deepEqual(Object.keys(r.body), ["error"], what)
    }
    const wrongToken = await http(s.url, "POST", messages, {
      token: "x".repeat(43),
      json: { message: fakeMessage(g.bytes, 1) },
    })
    assert.deepEqual([wrongToken.status, wrongToken.body.error.code], [401, "unauthenticated"])
    await assert.rejects(StreamClient.connect(s.url, "y".repeat(43)), /upgrade refused: 401/)
    assert.deepEqual(await rowCounts(s.app.store), before)

    const ok = await postMessage(s.url, alice, g)
    assert.equal(ok.status, 201)
    await bobStream.until(() => bobStream.entries(g.id).some((e) => e.seq === ok.body.seq), "bob keeps receiving")
    assert.equal(bobStream.entries(g.id).length, 1)
    assert.ok(!bobStream.frames.some((f) => f.type === "error"))
  })

  it("answers a user over its post rate with 429 rate_limited", async (t) => {
    const s = await startServer(t, { postBurst: 3, postPerMinute: 1 })
    const alice = await newUser(s.url, "alice")
    const g = await createGroup(s.url, alice)
    const results = await Promise.all(Array.from({ length: 4 }, () => postMessage(s.url, alice, g)))
    assert.deepEqual(results.map((r) => r.status).sort(), [201, 201, 429, 429], "the group creation took one token")
    const limited = results.find((r) => r.status === 429)!
    assert.equal(limited.body.error.code, "rate_limited")
    assert.ok(limited.headers["retry-after"])
  })

  it("counts every message of a batch against the post rate, all or none", async (t) => {
    const s = await startServer(t, { postBurst: 4, postPerMinute: 1 })
    const alice = await newUser(s.url, "alice")
    const g = await createGroup(s.url, alice)
    const batch = (n: number) =>
      http(s.url, "POST", `/v1/groups/${g.id}/messages/batch`, {
        token: alice.token,
        json: {
          messages: Array.from({ length: n }, () => ({
            message: fakeMessage(g.bytes, 0),
            clientId: toBase64Url(randomBytes(16)),
          })),
        },
      })
    // The group creation took one token of four: a batch of 4 is refused whole, one of 3 fits exactly.
    const over = await batch(4)
    assert.equal(over.status, 429)
    assert.equal(over.body.error.code, "rate_limited")
    assert.equal((await readLog(s.url, alice, g)).body.lastSeq, 0)
    assert.equal((await batch(3)).status, 201)
    assert.equal((await batch(1)).status, 429)
  })
})
