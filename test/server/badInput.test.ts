import assert from "node:assert/strict"
import { describe, it } from "node:test"
import { rowCounts } from "../helpers/db.js"
import { http, type HttpOptions } from "../helpers/http.js"
import { startServer } from "../helpers/server.js"
import { makeEncodedKeyPackages, newUser, uploadKeyPackages } from "../helpers/users.js"

describe("bad input", () => {
  it("answers each malformed request with a 4xx error body and changes nothing", async (t) => {
    const s = await startServer(t)
    const alice = await newUser(s.url, "alice")
    const bob = await newUser(s.url, "bob")
    const kps = await makeEncodedKeyPackages(alice, 2, { now: s.clock.now() })
    await uploadKeyPackages(s.url, alice, [kps[0]!])
    const reserved = await http(s.url, "POST", "/v1/keypackages/reserve", {
      token: bob.token,
      json: { target: "alice" },
    })
    const before = await rowCounts(s.app.store)

    const upload = `/v1/users/alice/keypackages`
    const cases: Array<[string, "POST" | "PUT" | "GET", string, HttpOptions, number, string]> = [
      ["invalid JSON", "POST", upload, { raw: '{"keyPackages": [' }, 400, "invalid_request"],
      ["empty JSON body", "POST", upload, { raw: "" }, 400, "invalid_request"],
      ["wrong type", "POST", upload, { json: { keyPackages: "abc" } }, 400, "invalid_request"],
      ["wrong item type", "POST", upload, { json: { keyPackages: [42] } }, 400, "invalid_request"],
      ["unknown field", "POST", upload, { json: { keyPackages: [kps[1]], extra: 1 } }, 400, "invalid_request"],
      ["bad base64", "POST", upload, { json: { keyPackages: ["not base64!"] } }, 400, "invalid_request"],
      ["no items", "POST", upload, { json: { keyPackages: [] } }, 400, "invalid_request"],
      ["too many items", "POST", upload, { json: { keyPackages: Array(65).fill(kps[1]) } }, 400, "invalid_request"],
      [
        "body over 1 MiB",
        "POST",
        upload,
        { raw: `{"keyPackages":["${"A".repeat(1024 * 1024)}"]}` },
        413,
        "payload_too_large",
      ],
      ["not JSON", "POST", upload, { raw: "keyPackages=1", contentType: "text/plain" }, 415, "unsupported_media_type"],
      ["JSON array body", "POST", upload, { raw: "[]" }, 400, "invalid_request"],
      [
        "prototype pollution",
        "POST",
        upload,
        { raw: '{"__proto__":{"x":1},"keyPackages":["AA"]}' },
        400,
        "invalid_request",
      ],
      ["bad user name", "GET", "/v1/users/Al!ce/keypackages/status", {}, 400, "invalid_request"],
      [
        "reserve unknown field",
        "POST",
        "/v1/keypackages/reserve",
        { json: { target: "alice", x: 1 } },
        400,
        "invalid_request",
      ],
      ["reserve wrong type", "POST", "/v1/keypackages/reserve", { json: { target: 7 } }, 400, "invalid_request"],
      [
        "spend bad ref",
        "POST",
        "/v1/keypackages/spend",
        { json: { ref: "***", reservationId: reserved.body.reservationId } },
        400,
        "invalid_request",
      ],
      ["unknown route", "GET", "/v1/nothing", {}, 404, "not_found"],
    ]
    for (const [what, method, path, opts, status, code] of cases) {
      const r = await http(s.url, method, path, { token: alice.token, ...opts })
      assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`)
      assert.equal(r.body.error.code, code, what)
      assert.equal(typeof r.body.error.message, "string", what)
      assert.deepEqual(Object.keys(r.body), ["error"], what)
    }
    assert.deepEqual(await rowCounts(s.app.store), before)
    const health = await http(s.url, "GET", "/v1/health")
    assert.equal(health.status, 200, "the server keeps serving")
    const ok = await uploadKeyPackages(s.url, alice, [kps[1]!])
    assert.equal(ok.body.results[0].status, "accepted")
  })
})
