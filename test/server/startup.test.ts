// mls-server's start-up failures: one line on stderr saying what and what to do, exit status 1, no stack trace; and
// --log-format pretty for a person at a terminal.
import assert from "node:assert/strict"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, it, type TestContext } from "node:test"
import { runServer, spawnServer } from "../helpers/spawnServer.js"

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), "mls-startup-"))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Exit 1 and exactly one line on stderr matching `expected`. */
async function refuses(args: string[], expected: RegExp): Promise<void> {
  const { code, stderr } = await runServer(args)
  assert.equal(code, 1, stderr)
  assert.equal(stderr.trimEnd().split("\n").length, 1, `one line: ${stderr}`)
  assert.match(stderr, expected)
  assert.doesNotMatch(stderr, /\n\s+at /, "no stack trace")
}

describe("mls-server start-up", () => {
  it("says which port is taken and what to do when the port is in use", async (t) => {
    const dir = tempDir(t)
    const first = await spawnServer(["--db", join(dir, "a.db"), "--log-level", "warn"])
    t.after(() => first.stop())
    const port = new URL(first.url).port
    await refuses(
      ["--port", port, "--db", join(dir, "b.db")],
      new RegExp(`^mls-server: port ${port} on 127\\.0\\.0\\.1 is already in use .*--port`),
    )
  })

  it("names the database path it cannot create or open", async (t) => {
    const dir = tempDir(t)
    writeFileSync(join(dir, "file"), "")
    await refuses(
      ["--port", "0", "--db", join(dir, "file", "sub", "s.db")],
      /^mls-server: --db .*cannot create its directory/,
    )
    mkdirSync(join(dir, "adir.db"))
    await refuses(["--port", "0", "--db", join(dir, "adir.db")], /^mls-server: --db .*cannot open the database/)
  })

  it("refuses TLS files that are not a PEM certificate and key", async (t) => {
    const dir = tempDir(t)
    const bad = join(dir, "bad.pem")
    writeFileSync(bad, "not a certificate\n")
    const db = ["--port", "0", "--db", join(dir, "s.db")]
    await refuses([...db, "--tls-cert", bad, "--tls-key", bad], /^mls-server: --tls-cert\/--tls-key: not a usable PEM/)
    const cert = join(import.meta.dirname, "..", "fixtures", "tls", "cert.pem")
    await refuses([...db, "--tls-cert", cert, "--tls-key", bad], /^mls-server: --tls-cert\/--tls-key: not a usable PEM/)
  })

  it("refuses a --domain (or a --host taken as the domain) that cannot be the domain of client ids", async () => {
    for (const [args, expected] of [
      [["--domain", "Chat.Example.org"], /^mls-server: --domain must be a lower-case DNS name or IPv4 address/],
      [["--host", "::1"], /^mls-server: --host ::1 cannot be the domain of client ids: give --domain/],
    ] as const) {
      const { code, stderr } = await runServer(["--port", "0", ...args])
      assert.equal(code, 2, stderr)
      assert.match(stderr, expected)
    }
  })

  it("refuses a --db-connections that is not a positive integer", async () => {
    for (const n of ["0", "-2", "1.5", "many"]) {
      const { code, stderr } = await runServer(["--port", "0", `--db-connections=${n}`])
      assert.equal(code, 2, stderr)
      assert.match(stderr, /^mls-server: --db-connections must be a positive integer/)
    }
  })

  it("logs human-readable lines to stderr with --log-format pretty", async (t) => {
    const dir = tempDir(t)
    const server = await spawnServer(["--db", join(dir, "s.db"), "--log-format", "pretty"])
    t.after(() => server.stop())
    assert.deepEqual(server.output, [`listening on ${server.url}`])
    await server.stop()
    const line = server.log.find((l) => l.includes("shutting down"))
    assert.ok(line, server.log.join("\n"))
    assert.match(line, /INFO/)
    assert.throws(() => JSON.parse(line), "not JSON")
  })
})
