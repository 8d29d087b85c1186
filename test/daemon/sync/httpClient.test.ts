import assert from "node:assert/strict"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { describe, it } from "node:test"
import { AppError } from "../../../rpc-schema/errors.js"
import { auth } from "../../../rpc-schema/server/index.js"
import { maxAnswerBytes, ServerClient } from "../../../daemon/sync/httpClient.js"

describe("the daemon's HTTP client", () => {
  // A hostile server, not the real one: the real server never answers this much.
  it("cuts off an answer over the size cap instead of reading it whole", async (t) => {
    const chunk = Buffer.alloc(1024 * 1024, 0x20)
    const total = 4 * maxAnswerBytes
    let written = 0
    let finished = false
    const server = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" })
      const pump = () => {
        while (written < total) {
          written += chunk.length
          if (!res.write(chunk)) return void res.once("drain", pump)
        }
        finished = true
        res.end()
      }
      res.on("close", () => res.removeAllListeners("drain"))
      pump()
    })
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    t.after(() => server.close())
    const client = new ServerClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)
    t.after(() => client.close())

    const err = await client.call(auth.challenge, { body: { username: "alice" } }).then(
      () => assert.fail("an answer over the cap was accepted"),
      (e: unknown) => e,
    )
    assert.ok(err instanceof AppError)
    assert.equal(err.code, "internal")
    assert.match(err.message, /over the size cap/)
    assert.equal(finished, false, "the client stopped reading before the server had sent it all")
  })
})
