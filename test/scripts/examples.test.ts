import assert from "node:assert/strict"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, it, type TestContext } from "node:test"
import { buildCtl, root, type RunResult } from "../helpers/ctl.js"
import { groupWith, registered } from "../helpers/chat.js"
import { startServer } from "../helpers/server.js"

const ok = (r: RunResult) => {
  assert.equal(r.code, 0, `exit ${r.code}: ${r.stderr}`)
  return r.stdout
}
const example = (name: string) => join(root, "scripts", "examples", name)

/** mlsctl built, a server, alice and bob registered, both in group "team". */
async function team(t: TestContext) {
  const [ctl, server] = await Promise.all([buildCtl(t), startServer(t)])
  const [a, b] = await Promise.all([registered(t, server.url, "alice"), registered(t, server.url, "bob")])
  const g = await groupWith(a, "team", { bob: b })
  const as =
    (d: typeof a) =>
    (...args: string[]) =>
      ctl.run(["--socket", d.socketPath, ...args])
  return { ctl, server, a, b, g, A: as(a), B: as(b) }
}

describe("mlsctl watch", () => {
  it("streams message.received as NDJSON while another user sends, replays after an id, exits 3 when the daemon goes", async (t) => {
    const { ctl, b, A } = await team(t)
    const got = b.client.next("message.received", (p) => p.text === "m2", 30_000)
    ok(await A("send", "team", "m1"))
    ok(await A("send", "team", "m2"))
    await got

    const mlsctl = join(ctl.binDir, "mlsctl")
    const env = { MLSD_SOCKET: b.socketPath }
    const w = ctl.start(mlsctl, ["--json", "watch", "--events", "message.received", "--after", "0"], env)
    const first = JSON.parse(await w.line((l) => l.includes('"m1"')))
    await w.line((l) => l.includes('"m2"'))
    await w.stderrMatch(/^mlsctl: watching message\.received \(last event \d+, \d+ replayed\)$/m)
    ok(await A("send", "team", "m3"))
    await w.line((l) => l.includes('"m3"'))
    const objects = w.lines.map((l) => JSON.parse(l))
    assert.deepEqual(
      objects.map((o) => [Object.keys(o), o.method, o.params.sender, o.params.group, o.params.text]),
      ["m1", "m2", "m3"].map((text) => [["method", "params"], "message.received", "alice", "team", text]),
    )

    // Human lines, from the event after m1's.
    const h = ctl.start(mlsctl, ["watch", "--events", "message.received", "--after", String(first.params.eventId)], env)
    await h.line((l) => l.endsWith("m3"))
    assert.equal(h.lines.length, 2)
    assert.match(h.lines[0]!, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d {2}\[team\] alice: m2$/)

    await b.stop()
    assert.equal(await w.exited, 3)
    assert.match(w.stderr(), /^mlsctl: the daemon went away/m)
    assert.equal(await h.exited, 3)
  })
})

describe("scripts/examples", () => {
  it("echo-bot.sh answers another member's message; the echo reaches the sender's history", async (t) => {
    const { ctl, a, b, A } = await team(t)
    const bot = ctl.start(example("echo-bot.sh"), ["team"], { MLSD_SOCKET: b.socketPath })
    await bot.stderrMatch(/^mlsctl: watching message\.received/m)
    const echoed = a.client.next("message.received", (p) => p.text === "echo: ping", 30_000)
    ok(await A("send", "team", "ping"))
    assert.equal((await echoed).sender, "bob")
    const history = JSON.parse(ok(await A("--json", "history", "team"))).messages
    assert.deepEqual(
      history.map((m: any) => `${m.sender}: ${m.text}`),
      ["alice: ping", "bob: echo: ping"],
    )
  })

  it("notify.sh prints one line per received message", async (t) => {
    const { ctl, b, A } = await team(t)
    const notify = ctl.start(example("notify.sh"), [], { MLSD_SOCKET: b.socketPath })
    await notify.stderrMatch(/^mlsctl: watching message\.received/m)
    ok(await A("send", "team", "hi there"))
    ok(await A("send", "team", "second"))
    await notify.line((l) => l === "[team] alice: second")
    assert.deepEqual(notify.lines, ["[team] alice: hi there", "[team] alice: second"])
  })

  it("pool-alert.sh exits 0 on a good pool, 1 with a warning otherwise, 3 without a daemon", async (t) => {
    const [ctl, server] = await Promise.all([buildCtl(t), startServer(t)])
    const [good, low] = await Promise.all([
      registered(t, server.url, "alice"),
      registered(t, server.url, "bob", { args: ["--pool-target", "4", "--pool-low-watermark", "8"] }),
    ])
    const alert = async (socket: string) => {
      const run = ctl.start(example("pool-alert.sh"), [], { MLSD_SOCKET: socket })
      return { code: await run.exited, stdout: run.lines, stderr: run.stderr() }
    }
    assert.deepEqual(await alert(good.socketPath), { code: 0, stdout: [], stderr: "" })
    const warned = await alert(low.socketPath)
    assert.equal(warned.code, 1)
    assert.match(warned.stderr, /^pool-alert: KeyPackage pool is low \(4 available, 0 reserved\)$/m)
    assert.equal((await alert(join(good.dataDir, "none.sock"))).code, 3)
  })
})

describe("README", () => {
  it("runs the Scripting section's examples as written", async (t) => {
    const [ctl, server] = await Promise.all([buildCtl(t), startServer(t)])
    const [a, b] = await Promise.all([registered(t, server.url, "alice"), registered(t, server.url, "bob")])
    const readme = readFileSync(join(root, "README.md"), "utf8")
    const section = /^## Scripting\n([\s\S]*?)(?=^## )/m.exec(readme)?.[1] ?? ""
    const blocks = [...section.matchAll(/^```sh\n([\s\S]*?)^```/gm)].map((m) => m[1]!)
    assert.equal(blocks.length, 3)
    const bobGets = b.client.next("message.received", (p) => p.text === "build 42 passed", 30_000)
    const results = []
    for (const code of blocks) {
      const sh = ctl.start("bash", ["-euo", "pipefail", "-c", code], { MLSD_SOCKET: a.socketPath })
      results.push({ code: await sh.exited, stdout: sh.lines, stderr: sh.stderr() })
    }
    assert.deepEqual(
      results.map((r) => [r.code, r.stderr]),
      blocks.map(() => [0, ""]),
    )
    await bobGets
    assert.deepEqual(results[2]!.stdout, ["alice\tbuild 41 passed", "alice\tbuild 42 passed"])
    assert.deepEqual(
      (await b.client.call("message.list", { group: "news" })).messages.map((m) => m.text),
      ["hello bob", "build 41 passed", "build 42 passed"],
    )
  })
})
