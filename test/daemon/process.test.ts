import assert from "node:assert/strict"
import { once } from "node:events"
import { existsSync, readFileSync, statSync } from "node:fs"
import { join } from "node:path"
import { describe, it } from "node:test"
import { daemonNodeFlags } from "../../daemon/nodeFlags.js"
import { rpcClient, runDaemon, startDaemon, type TestDaemon } from "../helpers/daemon.js"

/** The daemon's log once its start-up line is in (written just after the socket listens; 10 s at most). */
async function startupLog(d: TestDaemon): Promise<string> {
  const signal = AbortSignal.timeout(10_000)
  while (!d.stderr().includes('"msg":"started"')) await once(d.proc.stderr!, "data", { signal })
  return d.stderr()
}

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

  it("warns when started without its Node flags, which every launcher passes", async (t) => {
    const info = ["--log-level", "info"]
    const bare = await startDaemon(t, { nodeFlags: [], args: info })
    const warning = JSON.parse((await startupLog(bare)).split("\n").find((l) => l.includes("Node flags")) ?? "null")
    assert.deepEqual(warning?.missing, daemonNodeFlags)
    const flagged = await startDaemon(t, { args: info })
    assert.doesNotMatch(await startupLog(flagged), /Node flags/)

    // The launchers outside TypeScript pass the same flags: bin/mlsd, and npm run daemon / npm run bench.
    const root = join(import.meta.dirname, "..", "..")
    const scripts = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).scripts
    for (const launcher of [readFileSync(join(root, "bin", "mlsd"), "utf8"), scripts.daemon, scripts.bench])
      for (const flag of daemonNodeFlags) assert.ok(launcher.includes(flag), `${flag} in ${launcher}`)
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
