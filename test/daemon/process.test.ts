import assert from "node:assert/strict"
import { existsSync, statSync } from "node:fs"
import { describe, it } from "node:test"
import { rpcClient, runDaemon, startDaemon } from "../helpers/daemon.js"

describe("daemon process", () => {
  it("keeps one daemon per profile, with a 0600 socket in a 0700 data dir, and stops cleanly", async (t) => {
    const d = await startDaemon(t, { testClock: false })
    assert.equal(statSync(d.socketPath).mode & 0o777, 0o600)
    assert.equal(statSync(d.dataDir).mode & 0o777, 0o700)
    assert.equal(statSync(d.dbPath).mode & 0o777, 0o600)
    const st = await d.client.call("daemon.status")
    assert.equal(st.profile, "test")
    assert.equal(st.connection, "offline")
    assert.equal(st.username, null)

    // Same profile (data dir), another socket: refused by the lock.
    const second = await runDaemon(["--profile", "test", "--data-dir", d.dataDir, "--socket", `${d.socketPath}2`])
    assert.equal(second.code, 1)
    assert.match(second.stderr, /profile test: another daemon \(pid \d+\) serves this profile/)
    assert.equal((await d.client.call("daemon.status")).pid, st.pid, "the first one is untouched")

    assert.equal(await d.stop("SIGTERM"), 0)
    assert.equal(existsSync(d.socketPath), false, "socket removed")
    assert.equal(existsSync(`${d.dataDir}/mlsd.pid`), false, "pid file removed")
  })

  it("cleans up the stale socket and lock of a killed daemon", async (t) => {
    const d = await startDaemon(t)
    assert.equal(await d.stop("SIGKILL"), "SIGKILL")
    assert.ok(existsSync(d.socketPath), "a killed daemon leaves its socket")
    assert.ok(existsSync(`${d.dataDir}/mlsd.pid`), "and its pid file (the lock itself died with it)")
    const again = await d.restart()
    assert.equal((await again.client.call("daemon.status")).pid, again.proc.pid)
    const other = await rpcClient(again.socketPath)
    t.after(() => other.close())
    assert.equal((await other.call("identity.get")).registered, false)
  })
})
