import assert from "node:assert/strict"
import { once } from "node:events"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, it } from "node:test"
import { createGroup, postCommit, postMessage, readLog, reserve, type TestGroup } from "../helpers/groups.js"
import { fakeMessage, fakeWelcome } from "../helpers/mls.js"
import { serverDb } from "../helpers/postgres.js"
import { spawnServer, type ServerProcess } from "../helpers/spawnServer.js"
import { StreamClient } from "../helpers/stream.js"
import { makeEncodedKeyPackages, newUser, uploadKeyPackages } from "../helpers/users.js"

describe("stream across server restarts", () => {
  it("loses nothing acknowledged to a sender when the server is stopped by SIGTERM or SIGKILL mid-stream", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "mls-restart-"))
    const args = ["--db", await serverDb(dir), "--log-level", "error", "--post-burst", "1e9", "--post-rate", "1e9"]
    let server: ServerProcess = await spawnServer(args)
    t.after(async () => {
      await server.stop()
      rmSync(dir, { recursive: true, force: true })
    })
    const alice = await newUser(server.url, "alice")
    const bob = await newUser(server.url, "bob")
    await uploadKeyPackages(server.url, bob, await makeEncodedKeyPackages(bob, 1))
    const g: TestGroup = await createGroup(server.url, alice)
    const add = await postCommit(server.url, alice, g, {
      keyPackages: [await reserve(server.url, alice, "bob")],
      welcome: fakeWelcome(),
    })
    assert.equal(add.status, 201)

    const acked = new Map<number, string>()
    const clients: StreamClient[] = []
    let cursors = new Map<string, number>()
    let inbox = 0
    const connectBob = async () => {
      const c = await StreamClient.connect(server.url, bob.token, { groups: cursors, inboxAfter: inbox })
      clients.push(c)
      return c
    }
    const post = async () => {
      const message = fakeMessage(g.bytes, g.epoch, "application", 200)
      const r = await postMessage(server.url, alice, g, message)
      if (r.status === 201) acked.set(r.body.seq, message)
    }

    for (const signal of ["SIGTERM", "SIGKILL"] as const) {
      const bobStream = await connectBob()
      let posting = true
      const target = acked.size + 300
      const posters = Array.from({ length: 8 }, async () => {
        while (posting) await post().catch(() => {}) // refused or cut: not acknowledged
      })
      await bobStream.until(() => acked.size >= target, "acknowledged posts", 30_000)
      server.child.kill(signal)
      await once(server.child, "exit")
      posting = false
      await Promise.all(posters)
      await bobStream.until(() => bobStream.closed, "the stream ends with the server")
      cursors = new Map(bobStream.cursors)
      inbox = bobStream.inboxCursor
      server = await spawnServer(args)
    }
    for (let i = 0; i < 50; i++) await post()

    const entries: { seq: number; message: string }[] = []
    for (let after = 0; ;) {
      const page = (await readLog(server.url, alice, g, after)).body.entries as { seq: number; message: string }[]
      if (page.length === 0) break
      entries.push(...page)
      after = page.at(-1)!.seq
    }
    const stored = new Map(entries.map((e) => [e.seq, e.message]))
    for (const [seq, message] of acked) assert.equal(stored.get(seq), message, `acknowledged seq ${seq} is stored`)
    assert.deepEqual(
      entries.map((e) => e.seq),
      Array.from({ length: entries.length }, (_, i) => i + 1),
    )

    const final = await connectBob()
    t.after(() => final.close())
    const last = entries.at(-1)!.seq
    await final.until(() => final.cursors.get(g.id) === last, "every entry after the restarts", 30_000)
    const seen = clients.flatMap((c) => c.entries(g.id).map((e) => e.seq))
    assert.deepEqual(
      seen,
      Array.from({ length: last - 1 }, (_, i) => i + 2),
      "bob has each entry once, in order",
    )
  })
})
