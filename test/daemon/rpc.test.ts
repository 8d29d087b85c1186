import assert from "node:assert/strict"
import { mkdtempSync, rmSync } from "node:fs"
import { connect, createServer, type Socket } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, it } from "node:test"
import { Value } from "@sinclair/typebox/value"
import { methods, servedMethods } from "../../rpc-schema/daemon/index.js"
import { OpenRpcDocument } from "../../rpc-schema/daemon/rpc.js"
import { errorTable } from "../../rpc-schema/errors.js"
import { rpcClient, startDaemon } from "../helpers/daemon.js"
import { openRpcErrors } from "../helpers/openRpc.js"
import { startServer } from "../helpers/server.js"

/** A raw NDJSON connection: sends exactly what it is given, collects answer lines. */
async function raw(path: string) {
  const socket: Socket = connect(path)
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject))
  const lines: any[] = []
  let rest = ""
  let wake = () => {}
  let closed = false
  socket.on("data", (d: Buffer) => {
    const parts = (rest + d.toString()).split("\n")
    rest = parts.pop()!
    lines.push(...parts.filter((l) => l.trim()).map((l) => JSON.parse(l)))
    wake()
  })
  socket.on("close", () => {
    closed = true
    wake()
  })
  socket.on("error", () => {})
  const until = async (pred: () => boolean, what: string) => {
    const deadline = Date.now() + 10_000
    // Woken by each answer line and by the close; the timer is only the bound.
    while (!pred()) {
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`timed out waiting for ${what}`)
      await new Promise<void>((r) => {
        const timer = setTimeout(r, left)
        wake = () => {
          clearTimeout(timer)
          r()
        }
      })
    }
  }
  return {
    socket,
    lines,
    isClosed: () => closed,
    until,
    async send(text: string | Buffer) {
      const n = lines.length
      socket.write(text)
      await until(() => lines.length > n, "an answer")
      return lines[lines.length - 1]
    },
  }
}

describe("JSON-RPC socket", () => {
  it("answers bad input with the proper JSON-RPC errors and keeps serving everyone", async (t) => {
    const d = await startDaemon(t)
    const a = await raw(d.socketPath)
    const b = await raw(d.socketPath)
    t.after(() => {
      a.socket.destroy()
      b.socket.destroy()
    })
    const cases: [string, string, number][] = [
      ["invalid JSON", "{not json\n", -32700],
      ["not a request", '{"jsonrpc":"2.0","id":1}\n', -32600],
      ["unknown method", '{"jsonrpc":"2.0","id":2,"method":"nope.never"}\n', -32601],
      ["wrong params", '{"jsonrpc":"2.0","id":3,"method":"pool.list","params":{"state":"bogus"}}\n', -32602],
      ["unknown param", '{"jsonrpc":"2.0","id":4,"method":"identity.get","params":{"x":1}}\n', -32602],
      ["positional params", '{"jsonrpc":"2.0","id":5,"method":"identity.register","params":["alice"]}\n', -32602],
      ["app error", '{"jsonrpc":"2.0","id":6,"method":"pool.status"}\n', errorTable.not_registered.rpc],
    ]
    for (const [what, line, code] of cases) {
      const answer = await a.send(line)
      assert.equal(answer.error?.code, code, what)
      assert.equal(answer.jsonrpc, "2.0")
    }
    const invalid = await a.send('{"jsonrpc":"2.0","id":7,"method":"identity.register","params":{"username":"A!"}}\n')
    assert.ok(Array.isArray(invalid.error.data.issues) && invalid.error.data.issues.length > 0, "data.issues")
    assert.equal(invalid.error.data.issues[0].path, "/username")
    // error.message names the param, what it is and why, in one line.
    assert.match(invalid.error.message, /^invalid params for identity\.register: username \(.+\): .+$/)
    const before = await a.send(
      '{"jsonrpc":"2.0","id":10,"method":"message.list","params":{"group":"g","before":"x"}}\n',
    )
    assert.match(before.error.message, /^invalid params for message\.list: before \(.*seq.*\): Expected integer/)
    assert.doesNotMatch(before.error.message, /\n/)
    const app = await a.send('{"jsonrpc":"2.0","id":8,"method":"pool.list"}\n')
    assert.deepEqual(app.error.data, { code: "not_registered" })

    // A line over 1 MiB: an error, then that connection is closed; the others are served on.
    const big = Buffer.alloc(1024 * 1024 + 16, "x")
    const tooLong = await b.send(big)
    assert.equal(tooLong.error.code, -32600)
    await b.until(b.isClosed, "the oversized line's connection to close")
    const ok = await a.send('{"jsonrpc":"2.0","id":9,"method":"daemon.status"}\n')
    assert.equal(ok.result.profile, "test")
    assert.equal((await d.client.call("daemon.status")).profile, "test")
  })

  it("serves an OpenRPC 1.x document listing every method with its params and result", async (t) => {
    const d = await startDaemon(t)
    const doc: any = await d.client.call("rpc.discover")
    assert.equal(Value.Check(OpenRpcDocument, doc), true)
    assert.deepEqual(openRpcErrors(doc), [], "the OpenRPC meta-schema accepts it")
    assert.match(doc.openrpc, /^1\.\d+\.\d+$/)
    const served = servedMethods(true)
    assert.deepEqual(doc.methods.map((m: any) => m.name).sort(), served.map((m) => m.name).sort())
    assert.deepEqual(Object.keys(methods).sort(), served.map((m) => m.name).sort(), "test clock: all methods")
    for (const m of doc.methods) {
      const desc = methods[m.name as keyof typeof methods]
      assert.equal(m.paramStructure, "by-name")
      assert.deepEqual(m.params.map((p: any) => p.name).sort(), Object.keys(desc.params.properties).sort(), m.name)
      for (const p of m.params) assert.equal(typeof p.schema, "object")
      assert.equal(typeof m.result.schema, "object", m.name)
      for (const e of m.errors) assert.equal(typeof e.code, "number")
    }
    const notes = doc["x-notifications"].map((n: any) => n.name).sort()
    assert.deepEqual(notes, [
      "connection.changed",
      "credential.refused",
      "device.added",
      "group.historyLost",
      "group.joined",
      "group.updated",
      "invite.failed",
      "invite.received",
      "invites.expired",
      "message.received",
      "message.refused",
      "pool.changed",
      "pool.suspicious",
    ])
  })

  it("describes every method, param, result field and notification in rpc.discover", async (t) => {
    const d = await startDaemon(t)
    const doc: any = await d.client.call("rpc.discover")
    const missing: string[] = []
    const need = (where: string, text: unknown) => {
      if (typeof text !== "string" || text.trim() === "") missing.push(where)
    }
    // Every property of every object schema, however deep (unions, arrays, nested objects).
    const fields = (where: string, schema: any) => {
      for (const [name, sub] of Object.entries<any>(schema.properties ?? {})) {
        need(`${where}.${name}`, sub.description)
        fields(`${where}.${name}`, sub)
      }
      if (schema.items) fields(`${where}[]`, schema.items)
      for (const k of ["anyOf", "oneOf", "allOf"]) for (const s of schema[k] ?? []) fields(where, s)
    }
    for (const m of doc.methods) {
      need(m.name, m.description)
      need(`${m.name} summary`, m.summary)
      for (const p of m.params) {
        need(`${m.name}(${p.name})`, p.description)
        fields(`${m.name}(${p.name})`, p.schema)
      }
      fields(`${m.name} →`, m.result.schema)
    }
    for (const n of doc["x-notifications"]) {
      need(n.name, n.description)
      for (const p of n.params) {
        need(`${n.name}(${p.name})`, p.description)
        fields(`${n.name}(${p.name})`, p.schema)
      }
    }
    assert.deepEqual(missing, [], "every method, param, result field and notification has a description")
  })

  it("replays recorded events to a subscriber that says where it stopped", async (t) => {
    const s = await startServer(t)
    const d = await startDaemon(t, { server: s.url })
    await d.client.call("debug.setClock", { now: s.clock.now() })
    await d.client.call("identity.register", { username: "alice" })
    await d.client.call("pool.refresh")
    // A frontend that was not listening catches up from the recorded events, in order, then gets live ones.
    const late = await rpcClient(d.socketPath)
    t.after(() => late.close())
    const got: number[] = []
    late.on("pool.changed", (p) => got.push(p.eventId))
    late.on("connection.changed", (p) => got.push(p.eventId))
    const sub = await late.call("events.subscribe", { after: 0 })
    assert.ok(sub.replayed >= 2, "pool.changed and connection.changed were recorded")
    const live = late.next("pool.changed", (p) => p.eventId > sub.lastEventId)
    await d.client.call("pool.refresh")
    await live
    assert.deepEqual(
      got,
      [...got].sort((x, y) => x - y),
      "in order",
    )
    assert.equal(got.length, new Set(got).size, "no duplicate")
    assert.equal(got.filter((id) => id <= sub.lastEventId).length, sub.replayed)
    const again = await late.call("events.subscribe", { after: sub.lastEventId, events: ["connection.changed"] })
    assert.deepEqual(again.events, ["connection.changed"])
    assert.equal((await late.call("events.unsubscribe")).subscribed, false)
  })

  it("serves debug.* only under MLSD_TEST_CLOCK=1", async (t) => {
    const d = await startDaemon(t, { testClock: false })
    await assert.rejects(d.client.call("debug.advanceClock", { ms: 1 }), (e: any) => e.code === -32601)
    const doc: any = await d.client.call("rpc.discover")
    assert.ok(doc.methods.every((m: any) => !m.name.startsWith("debug.")))
  })
})

describe("checking answers against the contracts", () => {
  it("the OpenRPC meta-schema check refuses a broken document", () => {
    const base = { openrpc: "1.2.6", info: { title: "t", version: "1" } }
    assert.deepEqual(openRpcErrors({ ...base, methods: [] }), [])
    assert.notDeepEqual(openRpcErrors({ ...base, methods: [{ name: "no.params" }] }), [])
    const badSchema = { name: "p", schema: { type: "strin" } }
    assert.notDeepEqual(openRpcErrors({ ...base, methods: [{ name: "a.b", params: [badSchema] }] }), [])
  })

  // A peer that breaks the contract (not the daemon, which keeps it): the validating client must notice.
  it("the validating client rejects a result and records a notification that do not match their descriptors", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "rpc-"))
    const path = join(dir, "s.sock")
    const server = createServer((c) => {
      c.on("data", (d: Buffer) => {
        for (const line of d.toString().split("\n").filter(Boolean)) {
          const req = JSON.parse(line)
          c.write(JSON.stringify({ jsonrpc: "2.0", method: "message.received", params: { text: 1 } }) + "\n")
          c.write(JSON.stringify({ jsonrpc: "2.0", id: req.id, result: { profile: 42 } }) + "\n")
        }
      })
    })
    await new Promise<void>((resolve) => server.listen(path, resolve))
    const client = await rpcClient(path)
    t.after(() => {
      client.close()
      server.close()
      rmSync(dir, { recursive: true, force: true })
    })
    await assert.rejects(client.call("daemon.status"), /the result of daemon\.status does not match its descriptor/)
    assert.equal(client.violations.length, 1)
    assert.match(client.violations[0]!, /^message\.received: /)
  })
})
