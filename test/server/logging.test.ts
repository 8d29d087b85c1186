import assert from "node:assert/strict"
import { once } from "node:events"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, it } from "node:test"
import { toBase64Url } from "../../rpc-schema/common.js"
import { http } from "../helpers/http.js"
import { assertJsonLogLines } from "../helpers/logs.js"
import { spawnServer } from "../helpers/spawnServer.js"
import { makeEncodedKeyPackages, newUser, uploadKeyPackages } from "../helpers/users.js"

describe("server logs", () => {
  it("log requests at trace level without tokens, signatures or key material, and stop cleanly on SIGTERM", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "mls-log-"))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    const server = await spawnServer(["--db", join(dir, "server.db"), "--log-level", "trace"])
    t.after(() => server.stop())
    const alice = await newUser(server.url, "alice")
    const bob = await newUser(server.url, "bob")
    const kps = await makeEncodedKeyPackages(alice, 2)
    await uploadKeyPackages(server.url, alice, kps)
    const r = await http(server.url, "POST", "/v1/keypackages/reserve", { token: bob.token, json: { target: "alice" } })
    await http(server.url, "POST", "/v1/keypackages/spend", {
      token: bob.token,
      json: { ref: r.body.ref, reservationId: r.body.reservationId },
    })
    await http(server.url, "GET", "/v1/users/alice/keypackages/status", { headers: { authorization: "Bearer x" } })

    server.child.kill("SIGTERM")
    const [code] = await once(server.child, "close") // exited, its stderr read to the end
    assert.equal(code, 0, "SIGTERM is a clean stop")
    assert.deepEqual(server.output, [`listening on ${server.url}`], "stdout carries only the listening line")
    assert.ok(server.log.length > 0, "the log is on stderr")
    assertJsonLogLines(server.log) // stderr is not a terminal here: JSON
    const log = server.log.join("\n")
    assert.match(log, /"url":"\/v1\/keypackages\/spend"/, "requests are logged at trace level")
    const secrets = {
      "alice's token": alice.token,
      "bob's token": bob.token,
      "a KeyPackage": kps[0]!.slice(0, 40),
      "the reservation id": r.body.reservationId,
      "alice's seed": toBase64Url(alice.seed),
    }
    for (const [what, secret] of Object.entries(secrets)) assert.ok(!log.includes(secret), `${what} is not in the log`)
  })
})
