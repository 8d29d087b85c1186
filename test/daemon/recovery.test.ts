/**
 * Failures in the middle of maintenance: the server going away during an upload, and the daemon being SIGKILLed
 * during one. Faults are injected by wrapping the real server's DirectoryService.upload in this process.
 */
import assert from "node:assert/strict"
import { describe, it } from "node:test"
import { AppError } from "../../rpc-schema/errors.js"
import { startDaemon, type TestDaemon } from "../helpers/daemon.js"
import { daemonUserSession, serverPool } from "../helpers/pool.js"
import { startServer, type TestServer } from "../helpers/server.js"

/** Records every upload result the server gives, to prove that nothing is uploaded twice. */
function recordUploads(s: TestServer, seen: Map<string, number>) {
  const dir = s.app.directory
  const orig = dir.upload.bind(dir)
  dir.upload = async (user, encoded) => {
    const results = await orig(user, encoded)
    for (const r of results) {
      if (r.status !== "rejected") seen.set(r.ref, (seen.get(r.ref) ?? 0) + 1)
      assert.notEqual(r.status, "duplicate", "a key uploaded twice")
    }
    return results
  }
}

/**
 * The next upload runs `fault` before or after the server stores the keys, and its answer is lost (the daemon sees a
 * 503); later uploads pass and are recorded.
 */
function faultNextUpload(
  s: TestServer,
  when: "before" | "after",
  fault: () => void,
  seen: Map<string, number>,
): Promise<void> {
  const dir = s.app.directory
  const orig = dir.upload.bind(dir)
  return new Promise((resolve) => {
    dir.upload = async (user, encoded): Promise<never> => {
      dir.upload = orig
      recordUploads(s, seen)
      if (when === "before") {
        fault()
        resolve()
        throw new AppError("server_unreachable", "injected fault before storing")
      }
      for (const r of await orig(user, encoded))
        if (r.status !== "rejected") seen.set(r.ref, (seen.get(r.ref) ?? 0) + 1)
      fault()
      resolve()
      throw new AppError("server_unreachable", "injected fault after storing")
    }
  })
}

async function assertAgreement(s: TestServer, d: TestDaemon) {
  const user = await daemonUserSession(s.url, d.dbPath)
  const server = await serverPool(s.url, user)
  const keys = (await d.client.call("pool.list")).keys
  const held = keys.filter((k) => !k.lastResort && (k.state === "available" || k.state === "reserved"))
  assert.deepEqual([...server.refs.available, ...server.refs.reserved].sort(), held.map((k) => k.ref).sort())
  assert.ok(
    held.every((k) => k.hasPrivateKey),
    "no key on the server whose private part is lost",
  )
  assert.equal(keys.filter((k) => k.state === "created").length, 0, "nothing left waiting for upload")
  assert.equal(server.status.available, 32)
  assert.ok(server.status.lastResort)
  const lr = keys.find((k) => k.lastResort && k.state === "available")
  assert.equal(lr?.ref, server.status.lastResort.ref)
  assert.ok(lr?.hasPrivateKey)
  return server
}

describe("pool recovery", () => {
  it("reports a server stopped during maintenance as degraded, then heals with no duplicate upload", async (t) => {
    const s = await startServer(t)
    const d = await startDaemon(t, { server: s.url, args: ["--retry-max-s", "1"] })
    await d.client.call("debug.setClock", { now: s.clock.now() })
    await d.client.call("events.subscribe")
    const seen = new Map<string, number>()
    // The server stores the first batch and then goes away before answering it.
    const faulted = faultNextUpload(s, "after", () => void s.stop(), seen)
    const degraded = d.client.next("pool.changed", (p) => p.status.health === "degraded")
    await d.client.call("identity.register", { username: "alice" })
    await faulted
    const failed = (await degraded).status
    assert.equal(failed.lastPass?.ok, false)
    assert.ok(failed.lastError, "the failure is reported")
    const st = await d.client.call("pool.status")
    assert.equal(st.health, "degraded")
    assert.ok(st.consecutiveFailures >= 1)
    assert.ok(st.created > 0, "generated keys are persisted, waiting")

    const healed = d.client.next("pool.changed", (p) => p.status.health === "good" && p.status.synced, 20_000)
    await s.start()
    recordUploads(s, seen)
    const ok = (await healed).status
    assert.equal(ok.lastError, null)
    assert.equal(ok.consecutiveFailures, 0)
    await assertAgreement(s, d)
    assert.ok(
      [...seen.values()].every((n) => n === 1),
      "every key reached the server exactly once",
    )
  })

  for (const when of ["before", "after"] as const) {
    it(`agrees with the server after a SIGKILL during an upload (${when} the server stored it)`, async (t) => {
      const s = await startServer(t)
      const d = await startDaemon(t, { server: s.url })
      await d.client.call("debug.setClock", { now: s.clock.now() })
      const seen = new Map<string, number>()
      const killed = faultNextUpload(s, when, () => d.proc.kill("SIGKILL"), seen)
      d.client.call("identity.register", { username: "alice" }).catch(() => undefined)
      await killed
      assert.equal(await d.stop(), "SIGKILL")

      const again = await d.restart()
      await again.client.call("debug.setClock", { now: s.clock.now() })
      assert.equal((await again.client.call("identity.get")).username, "alice")
      const st = await again.client.call("pool.refresh")
      assert.equal(st.lastError, null)
      assert.equal(st.synced, true)
      await assertAgreement(s, again)
      assert.ok(
        [...seen.values()].every((n) => n === 1),
        "no key uploaded twice",
      )
    })
  }
})
