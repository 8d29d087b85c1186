// Issue 6 acceptance scenarios end to end: a real server, real daemons (alice, bob, carol, …) in temp dirs.
import assert from "node:assert/strict"
import { readFileSync } from "node:fs"
import { describe, it } from "node:test"
import type { TestDaemon } from "../helpers/daemon.js"
import { groupWith, history, registered } from "../helpers/chat.js"
import { sql } from "../helpers/db.js"
import { http } from "../helpers/http.js"
import { startServer } from "../helpers/server.js"
import { newIdentity, newUser } from "../helpers/users.js"

const code = (c: string) => (e: { appCode?: string }) => e.appCode === c

/** Reserves every KeyPackage of `target` the server would hand out, as `by`; answers how many. */
async function drain(base: string, token: string, target: string): Promise<number> {
  for (let n = 0; ; n++) {
    const r = await http(base, "POST", "/v1/keypackages/reserve", { token, json: { target } })
    if (r.status === 404) return n
    assert.equal(r.status, 201, JSON.stringify(r.body))
    if (r.body.lastResort) return n
  }
}

describe("group scenarios", () => {
  it("10 rounds: alice and carol invite bob at the same moment; each invite takes its own KeyPackage", async (t) => {
    const s = await startServer(t, { reserveBurst: 100 })
    const [alice, bob, carol] = (await Promise.all(["alice", "bob", "carol"].map((n) => registered(t, s.url, n)))) as [
      TestDaemon,
      TestDaemon,
      TestDaemon,
    ]
    const ids: string[] = []
    for (let round = 0; round < 10; round++) {
      const [g1, g2] = await Promise.all([
        alice.client.call("group.create", { name: `a${round}` }),
        carol.client.call("group.create", { name: `c${round}` }),
      ])
      const joins = [g1, g2].map((g) => bob.client.next("group.joined", (p) => p.groupId === g.groupId, 20_000))
      const [r1, r2] = await Promise.all([
        alice.client.call("group.invite", { group: g1.groupId, user: "bob" }),
        carol.client.call("group.invite", { group: g2.groupId, user: "bob" }),
      ])
      assert.deepEqual(
        [r1.members, r2.members],
        [
          ["alice", "bob"],
          ["carol", "bob"],
        ],
      )
      await Promise.all(joins)
      ids.push(g1.groupId, g2.groupId)
    }
    const consumed = (await bob.client.call("pool.list", { state: "consumed" })).keys
    assert.equal(consumed.length, 20)
    assert.equal(new Set(consumed.map((k) => k.ref)).size, 20, "every invite consumed a different KeyPackage")
    const groups = (await bob.client.call("group.list")).groups
    assert.deepEqual(groups.map((g) => g.groupId).sort(), [...ids].sort())
    assert.ok(groups.every((g) => g.status === "active" && g.members.length === 2))
  })

  it("an exhausted pool without a last-resort key is pool_exhausted; with one the invite succeeds", async (t) => {
    const s = await startServer(t)
    const small = ["--pool-target", "2", "--pool-cap", "2"]
    const [alice, dave, erin] = (await Promise.all([
      registered(t, s.url, "alice"),
      registered(t, s.url, "dave", { args: [...small, "--no-last-resort"] }),
      registered(t, s.url, "erin", { args: small }),
    ])) as [TestDaemon, TestDaemon, TestDaemon]
    const thief = await newUser(s.url, "thief")
    assert.equal(await drain(s.url, thief.token, "dave"), 2)
    assert.equal(await drain(s.url, thief.token, "erin"), 2)

    await alice.client.call("group.create", { name: "full" })
    await assert.rejects(alice.client.call("group.invite", { group: "full", user: "dave" }), (e: any) => {
      assert.equal(e.appCode, "pool_exhausted")
      assert.match(e.message, /dave has no KeyPackage left on the server/)
      return true
    })
    assert.deepEqual((await dave.client.call("group.list")).groups, [])
    const joined = erin.client.next("group.joined", (p) => p.name === "full", 20_000)
    const r = await alice.client.call("group.invite", { group: "full", user: "erin" })
    assert.deepEqual(r.members, ["alice", "erin"])
    await joined
    const lastResort = (await erin.client.call("pool.list")).keys.find((k) => k.lastResort)
    assert.ok(lastResort, "erin keeps her last-resort key: it is never consumed")
    const heard = alice.client.next("message.received", (p) => p.text === "in by the last resort")
    await erin.client.call("message.send", { group: "full", text: "in by the last resort" })
    await heard
  })

  it("removed and leaving members get nothing after; everyone restarted carries on; the server never sees text", async (t) => {
    const s = await startServer(t)
    const [alice, bob, carol, dave] = (await Promise.all(
      ["alice", "bob", "carol", "dave"].map((n) => registered(t, s.url, n)),
    )) as [TestDaemon, TestDaemon, TestDaemon, TestDaemon]
    const sent: string[] = []
    const say = async (from: TestDaemon, text: string, to: TestDaemon[]) => {
      const heard = to.map((d) => d.client.next("message.received", (p) => p.text === text, 20_000))
      await from.client.call("message.send", { group: "four", text })
      await Promise.all(heard)
      sent.push(text)
    }
    const got = { bob: [] as string[], carol: [] as string[] }
    bob.client.on("message.received", (p) => got.bob.push(p.text))
    carol.client.on("message.received", (p) => got.carol.push(p.text))
    const g = await groupWith(alice, "four", { bob, carol, dave })
    await say(alice, "hello all: secret-text-one", [bob, carol, dave])

    const bobOut = bob.client.next("group.updated", (p) => p.reason === "removed" && p.groupId === g.groupId)
    await alice.client.call("group.remove", { group: "four", user: "bob" })
    const out = await bobOut
    assert.equal(out.by, "alice")
    await say(carol, "bob is gone: secret-text-two", [alice, dave])

    const carolOut = carol.client.next("group.updated", (p) => p.reason === "removed" && p.groupId === g.groupId)
    const committed = alice.client.next("group.updated", (p) => p.removed.includes("carol"), 20_000)
    await carol.client.call("group.leave", { group: "four" })
    await carolOut
    assert.deepEqual((await committed).members, ["alice", "dave"])
    await say(dave, "just us: secret-text-three", [alice])
    await say(alice, "indeed: secret-text-four", [dave])

    // bob and carol received nothing sent after they were out.
    assert.deepEqual(got.bob, ["hello all: secret-text-one"])
    assert.deepEqual(got.carol, ["hello all: secret-text-one"])
    assert.deepEqual(await history(bob.client, "four"), ["hello all: secret-text-one"])
    assert.deepEqual(await history(carol.client, "four"), sent.slice(0, 2))
    await assert.rejects(bob.client.call("message.send", { group: "four", text: "x" }), code("not_member"))

    // Everyone restarted: groups, members, history and sending all work.
    const again = await Promise.all(
      [alice, bob, carol, dave].map(async (d) => {
        await d.stop()
        const d2 = await d.restart()
        await d2.client.call("events.subscribe")
        return d2
      }),
    )
    const [a2, b2, c2, d2] = again as [TestDaemon, TestDaemon, TestDaemon, TestDaemon]
    for (const d of [a2, d2]) {
      const m = await d.client.call("group.members", { group: "four" })
      assert.deepEqual(
        m.members.map((x) => x.username),
        ["alice", "dave"],
      )
      assert.deepEqual(await history(d.client, "four"), sent)
    }
    assert.equal((await b2.client.call("group.list")).groups[0]!.status, "removed")
    assert.equal((await c2.client.call("group.list")).groups[0]!.status, "removed")
    await say(d2, "after the restart: secret-text-five", [a2])
    await say(a2, "still fine: secret-text-six", [d2])
    const g2 = await groupWith(a2, "again", { bob: b2 })
    const heard = b2.client.next("message.received", (p) => p.text === "bob is back: secret-text-seven")
    await a2.client.call("message.send", { group: g2.groupId, text: "bob is back: secret-text-seven" })
    await heard
    sent.push("bob is back: secret-text-seven")

    // No message text anywhere in the server's database file or its WAL.
    for (const file of [s.dbPath, `${s.dbPath}-wal`]) {
      let bytes: Buffer
      try {
        bytes = readFileSync(file)
      } catch {
        continue
      }
      for (const text of sent) {
        for (const needle of [text, text.split(": ")[1]!])
          assert.equal(bytes.indexOf(Buffer.from(needle, "utf8")), -1, `"${needle}" is not in ${file}`)
      }
    }
  })

  it("a member whose directory key was swapped on the server is refused with credential.refused", async (t) => {
    const s = await startServer(t)
    const [alice, bob, carol, dave] = (await Promise.all(
      ["alice", "bob", "carol", "dave"].map((n) => registered(t, s.url, n)),
    )) as [TestDaemon, TestDaemon, TestDaemon, TestDaemon]
    // alice pins carol's key by sharing a group with her.
    const g = await groupWith(alice, "pinned", { carol })
    const swapped = newIdentity().publicKey
    await sql(
      s.app.store,
      `UPDATE devices SET login_key = ?, mls_key = ? WHERE user_id = (SELECT user_id FROM accounts WHERE handle = ?)`,
      swapped,
      swapped,
      "carol",
    )

    // alice saw carol's key before: the directory's new one is refused before anything is reserved.
    const aliceRefused = alice.client.next("credential.refused", (p) => p.username === "carol")
    await alice.client.call("group.create", { name: "second" })
    await assert.rejects(alice.client.call("group.invite", { group: "second", user: "carol" }), (e: any) => {
      assert.equal(e.appCode, "forbidden")
      assert.match(e.message, /carol's signature key changed/)
      return true
    })
    assert.match((await aliceRefused).reason, /pinned/)
    // bob never saw carol: her KeyPackage (signed with her real key) does not match the directory's key.
    const bobRefused = bob.client.next("credential.refused", (p) => p.username === "carol")
    await bob.client.call("group.create", { name: "fresh" })
    await assert.rejects(bob.client.call("group.invite", { group: "fresh", user: "carol" }))
    assert.match((await bobRefused).reason, /directory/)
    assert.deepEqual((await bob.client.call("group.members", { group: "fresh" })).members.length, 1)
    // dave, added to alice's group with carol in it, refuses carol's credential and does not join.
    const daveRefused = dave.client.next("credential.refused", (p) => p.username === "carol", 20_000)
    const failed = dave.client.next("invite.failed", (p) => p.groupId === g.groupId, 20_000)
    await alice.client.call("group.invite", { group: "pinned", user: "dave" })
    assert.equal((await failed).code, "credential_refused")
    await daveRefused
    assert.deepEqual((await dave.client.call("group.list")).groups, [])
    // alice and carol, who pinned each other's real keys, carry on.
    const heard = alice.client.next("message.received", (p) => p.text === "still me")
    await carol.client.call("message.send", { group: "pinned", text: "still me" })
    await heard
  })
})
