// A new user's first minutes with mlsd: `--server --username` registers by itself, also when the server comes up only
// later; `daemon.reconnect` retries now; names are folded to lower case; `--version`; start-up failures are one line;
// the log is JSON on stderr with no key twice.
import assert from "node:assert/strict"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, it, type TestContext } from "node:test"
import { runDaemon, startDaemon } from "../helpers/daemon.js"
import { assertJsonLogLines } from "../helpers/logs.js"
import { startServer } from "../helpers/server.js"

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), "mlsd-first-"))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

describe("mlsd first contact", () => {
  it("registers --username by itself once a server that was down comes up, and fills its pool", async (t) => {
    const s = await startServer(t)
    await s.stop() // the URL (a port picked free) answers nothing until start()
    const d = await startDaemon(t, {
      server: s.url,
      profile: "Alice",
      args: ["--username", "Alice", "--log-level", "debug"],
    })
    const c = d.client
    await c.call("events.subscribe", {})
    const waiting = await c.call("daemon.status")
    assert.equal(waiting.profile, "alice", "profile names are folded to lower case")
    assert.equal(waiting.registration.username, "alice", "so are user names")
    assert.ok(["registering", "waiting"].includes(waiting.registration.state), waiting.registration.state)
    assert.equal((await c.call("identity.get")).registered, false)

    const connected = c.next("connection.changed", (p) => p.state === "connected", 90_000)
    const filled = c.next("pool.changed", (p) => p.status.available >= p.status.policy.target, 90_000)
    await s.start() // no call to the daemon: it retries by itself
    await connected
    await filled
    const id = await c.call("identity.get")
    assert.equal(id.registered, true)
    assert.equal(id.username, "alice")
    assert.equal(id.server, s.url)
    const st = await c.call("daemon.status")
    assert.equal(st.registration.state, "registered")
    assert.equal(st.registration.lastError, null)
    // Registering the same name again is no error; another name is.
    assert.deepEqual(await c.call("identity.register", { username: "ALICE" }), id)
    await assert.rejects(
      c.call("identity.register", { username: "carol" }),
      (e: any) => e.appCode === "already_registered",
    )

    assertJsonLogLines(d.stderr().trimEnd().split("\n"))
  })

  it("daemon.reconnect retries a waiting registration and the stream now", async (t) => {
    const s = await startServer(t)
    await s.stop()
    const d = await startDaemon(t, { server: s.url, args: ["--username", "bob"] })
    const c = d.client
    await c.call("events.subscribe", {})
    // Wait for the first failed attempt: it is `waiting` with a retry time.
    let st = await c.call("daemon.status")
    for (let i = 0; st.registration.state !== "waiting"; i++) {
      assert.ok(i < 200, `registration still ${st.registration.state}`)
      await new Promise((r) => setTimeout(r, 50))
      st = await c.call("daemon.status")
    }
    assert.equal(st.registration.lastError?.code, "server_unreachable")
    assert.ok(st.registration.nextRetryAt !== null && st.registration.attempts >= 1)

    await s.start()
    const connected = c.next("connection.changed", (p) => p.state === "connected", 60_000)
    const answer = await c.call("daemon.reconnect")
    assert.equal(answer.profile, "test", "it answers the daemon's status")
    await connected
    assert.equal((await c.call("identity.get")).username, "bob")

    // The stream, after an outage: reconnect now brings the link back.
    const down = c.next("connection.changed", (p) => p.state === "disconnected", 60_000)
    await s.stop()
    await down
    await s.start()
    const up = c.next("connection.changed", (p) => p.state === "connected", 60_000)
    await c.call("daemon.reconnect")
    await up
    assert.equal((await c.call("daemon.status")).connection, "connected")
  })

  it("prints its version, and refuses bad names and unusable paths in one line with exit status 1", async (t) => {
    const dir = tempDir(t)
    const version = await runDaemon(["--version"])
    assert.equal(version.code, 0)
    assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/)

    const badName = await runDaemon(["--profile", "no spaces", "--data-dir", join(dir, "x")])
    assert.equal(badName.code, 2)
    assert.match(badName.stderr, /^mlsd: invalid profile name "no spaces"/)
    const badUser = await runDaemon([
      "--server",
      "http://127.0.0.1:9",
      "--username",
      "a b",
      "--data-dir",
      join(dir, "y"),
    ])
    assert.equal(badUser.code, 2)
    assert.match(badUser.stderr, /^mlsd: invalid user name "a b"/)

    writeFileSync(join(dir, "file"), "")
    mkdirSync(join(dir, "dbdir", "mlsd.db"), { recursive: true })
    const cases: [string[], RegExp][] = [
      [["--data-dir", join(dir, "file", "data")], /^mlsd: data dir .* is not usable .*--data-dir$/],
      [
        ["--data-dir", join(dir, "ok"), "--socket", join(dir, "file", "d.sock")],
        /^mlsd: cannot listen on socket .*--socket$/,
      ],
      [["--data-dir", join(dir, "dbdir")], /^mlsd: database .* cannot be opened .*--data-dir$/],
    ]
    for (const [args, expected] of cases) {
      const r = await runDaemon(["--profile", "p", "--socket", join(dir, "p.sock"), ...args])
      assert.equal(r.code, 1, r.stderr)
      const lines = r.stderr
        .trimEnd()
        .split("\n")
        .filter((l) => !l.startsWith("{"))
      assert.equal(lines.length, 1, r.stderr)
      assert.match(lines[0]!, expected)
      assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace")
    }
  })
})
