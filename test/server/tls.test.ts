// The server speaking TLS itself (--tls-cert/--tls-key): HTTPS and WSS for real daemons that trust its certificate,
// nothing in plain text, and clear refusals of bad flags. The certificate in test/fixtures/tls is for 127.0.0.1 only.
import assert from "node:assert/strict"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, it } from "node:test"
import { Agent, request } from "undici"
import { groupWith, registered } from "../helpers/chat.js"
import { serverDb } from "../helpers/postgres.js"
import { spawnServer, runServer } from "../helpers/spawnServer.js"

const fixtures = join(import.meta.dirname, "..", "fixtures", "tls")
const cert = join(fixtures, "cert.pem")
const key = join(fixtures, "key.pem")

describe("server over TLS", () => {
  it("serves HTTPS and WSS to daemons that trust its certificate, and nothing in plain text", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "mls-tls-"))
    const server = await spawnServer([
      "--db",
      await serverDb(dir),
      "--log-level",
      "error",
      "--tls-cert",
      cert,
      "--tls-key",
      key,
    ])
    t.after(async () => {
      await server.stop()
      rmSync(dir, { recursive: true, force: true })
    })
    assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/)

    const trusting = new Agent({ connect: { ca: readFileSync(cert) } })
    const health = await request(`${server.url}/v1/health`, { dispatcher: trusting })
    assert.equal(health.statusCode, 200)
    assert.equal(((await health.body.json()) as { status: string }).status, "ok")
    // Without the certificate in its trust store a client refuses the server; plain HTTP gets no answer.
    await assert.rejects(request(`${server.url}/v1/health`), /self-signed|certificate/i)
    await assert.rejects(request(`${server.url.replace("https:", "http:")}/v1/health`))

    // Two daemons register, form a group and talk: REST over HTTPS, the stream over WSS.
    const env = { NODE_EXTRA_CA_CERTS: cert }
    const alice = await registered(t, server.url, "alice", { env })
    const bob = await registered(t, server.url, "bob", { env })
    const g = await groupWith(alice, "tls", { bob })
    const got = bob.client.next("message.received", (p) => p.text === "over tls", 20_000)
    await alice.client.call("message.send", { group: g.groupId, text: "over tls" })
    assert.equal((await got).groupId, g.groupId)
    assert.equal((await bob.client.call("daemon.status")).connection, "connected")
  })

  it("refuses a certificate without its key, and files it cannot read, with exit code 2", async () => {
    const halves = await runServer(["--tls-cert", cert])
    assert.equal(halves.code, 2)
    assert.match(halves.stderr, /--tls-cert and --tls-key go together/)
    const missing = await runServer(["--tls-cert", cert, "--tls-key", join(fixtures, "missing.pem")])
    assert.equal(missing.code, 2)
    assert.match(missing.stderr, /--tls-key: cannot read .*missing\.pem/)
  })
})
