// A Commit whose answer is lost: the daemon keeps it in flight; its echo on the stream settles the group state.
import assert from "node:assert/strict"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, it } from "node:test"
import { pino } from "pino"
import { groups as routes } from "../../rpc-schema/server/index.js"
import { AppError } from "../../rpc-schema/errors.js"
import { SettableClock } from "../../daemon/clock.js"
import { Daemon } from "../../daemon/daemon.js"
import { createGroup } from "../../daemon/groups/create.js"
import { inviteMember } from "../../daemon/groups/invite.js"
import { listGroups } from "../../daemon/groups/queries.js"
import { defaultPolicy } from "../../daemon/pool/policy.js"
import { startDaemon } from "../helpers/daemon.js"
import { startServer } from "../helpers/server.js"

describe("group commits", () => {
  it("an add Commit whose answer was lost is adopted from its echo; the invitee joins", async (t) => {
    const s = await startServer(t)
    const [carol, bob] = await Promise.all(
      ["carol", "bob"].map(async (name) => {
        const d = await startDaemon(t, { server: s.url, profile: name })
        await d.client.call("events.subscribe")
        await d.client.call("identity.register", { username: name })
        await d.client.call("pool.refresh")
        return d
      }),
    )

    const dir = mkdtempSync(join(tmpdir(), "mlsd-inproc-"))
    const alice = new Daemon({
      version: "test",
      profile: "alice",
      dataDir: dir,
      dbPath: join(dir, "mlsd.db"),
      socketPath: join(dir, "alice.sock"),
      server: s.url,
      policy: { ...defaultPolicy, target: 2, lowWatermark: 1 },
      clock: new SettableClock(),
      log: pino({ level: "silent" }),
    })
    t.after(async () => {
      await alice.close()
      rmSync(dir, { recursive: true, force: true })
    })
    type Seen = { name: string; params: any }
    const seen: Seen[] = []
    let wake: (() => void)[] = []
    alice.events.on((e) => {
      seen.push({ name: e.name, params: e.params })
      const w = wake
      wake = []
      for (const f of w) f()
    })
    /** The first event (seen already or yet to come) that satisfies `f`; bounded. */
    const waitFor = (f: (e: Seen) => boolean) =>
      new Promise<Seen>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("no such event within 10 s")), 10_000)
        const check = () => {
          const e = seen.find(f)
          if (!e) return void wake.push(check)
          clearTimeout(timer)
          resolve(e)
        }
        check()
      })
    await alice.register("alice", undefined)
    assert.ok(await waitFor((e) => e.name === "connection.changed" && e.params.state === "connected"))
    await alice.groups().run((g) => createGroup(g.ctx, "lost"))
    const carolJoined = carol!.client.next("group.joined", (p) => p.name === "lost")
    await alice.groups().run((g) => inviteMember(g.ctx, g.commits, "lost", "carol"))
    await carolJoined

    // The server takes the Commit, but its answer never arrives.
    const session = (alice as any).online.session
    const real = session.call.bind(session)
    session.call = async (d: unknown, input: unknown) => {
      const r = await real(d, input)
      if (d !== routes.commit) return r
      session.call = real
      throw new AppError("server_unreachable", "answer lost")
    }
    const joined = bob!.client.next("group.joined", (p) => p.name === "lost")
    await assert.rejects(
      alice.groups().run((g) => inviteMember(g.ctx, g.commits, "lost", "bob")),
      (e: any) => e.code === "server_unreachable",
    )
    const adopted = await waitFor((e) => e.name === "group.updated" && e.params.added.includes("bob"))
    assert.ok(adopted, "the echo of the Commit adopted its state")
    assert.deepEqual(adopted.params.members, ["alice", "carol", "bob"])
    assert.deepEqual((await joined).members, ["alice", "carol", "bob"])

    const heard = [bob!, carol!].map((d) => d.client.next("message.received", (p) => p.text === "made it"))
    await alice.groups().sends.send("lost", "made it")
    await Promise.all(heard)
    assert.equal(listGroups(alice.groupStore, alice.groups().ctx.directory)[0]!.epoch, 2)
  })
})
