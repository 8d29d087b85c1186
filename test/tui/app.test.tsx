import { frame, press, waitForFrame } from "../helpers/ink.js" // first: it turns colours on before ink loads
import assert from "node:assert/strict"
import { describe, it } from "node:test"
import { render } from "ink-testing-library"
import { App } from "../../tui/App.js"
import { registered } from "../helpers/chat.js"
import { startServer } from "../helpers/server.js"

const pageUp = "\x1b[5~"

describe("App against a real daemon", () => {
  it("shows the newest messages first and loads older history as PgUp reaches the top", async (t) => {
    const s = await startServer(t)
    const alice = await registered(t, s.url, "alice")
    await alice.client.call("group.create", { name: "team" })
    // More than the first page (100) holds.
    for (let i = 1; i <= 130; i++) {
      await alice.client.call("message.send", { group: "team", text: `msg ${String(i).padStart(3, "0")}` })
    }
    const r = render(<App socketPath={alice.socketPath} />)
    t.after(() => r.unmount())
    await waitForFrame(r, (f) => f.includes("▸ alice: msg 130") && f.includes("alice @ 127.0.0.1"), 20_000)
    assert.doesNotMatch(frame(r), /msg 100/)

    // PgUp until the oldest message heads the pane and nothing older is left. A PgUp at the top of the loaded page
    // changes nothing until the older page has arrived, so a press that moved nothing is simply repeated.
    for (let i = 0; i < 80 && frame(r).includes("↑ PgUp"); i++) {
      const before = frame(r)
      await press(r, pageUp)
      await waitForFrame(r, (f) => f !== before, 1_000).catch(() => undefined)
    }
    const top = frame(r)
    assert.match(top, /▸ alice: msg 001[^]*msg 002/)
    assert.doesNotMatch(top, /↑ PgUp/)
    assert.match(top, /↓ \d+ newer/)
  })
})

describe("App: invitation consent", () => {
  it("shows a pending invitation; /accept joins it, /decline NAME refuses another", async (t) => {
    const s = await startServer(t)
    const alice = await registered(t, s.url, "alice")
    const bob = await registered(t, s.url, "bob", { args: ["--invites", "ask"] })
    const r = render(<App socketPath={bob.socketPath} />)
    t.after(() => r.unmount())
    await waitForFrame(r, (f) => f.includes("bob @ 127.0.0.1"), 20_000)

    await alice.client.call("group.create", { name: "team" })
    await alice.client.call("group.invite", { group: "team", user: "bob" })
    await waitForFrame(r, (f) => f.includes("alice invites you to team"), 20_000)
    await press(r, ..."/accept", "\r")
    await waitForFrame(r, (f) => f.includes("joined team"), 20_000)
    assert.deepEqual(
      (await bob.client.call("group.list")).groups.map((g) => g.name),
      ["team"],
    )

    await alice.client.call("group.create", { name: "side" })
    await alice.client.call("group.invite", { group: "side", user: "bob" })
    await waitForFrame(r, (f) => f.includes("alice invites you to side"), 20_000)
    await press(r, ..."/decline side", "\r")
    await waitForFrame(r, (f) => f.includes("declined alice's invitation to side"), 20_000)
    assert.deepEqual((await bob.client.call("group.invites")).invitations, [])
    assert.deepEqual(
      (await bob.client.call("group.list")).groups.map((g) => g.name),
      ["team"],
    )
  })
})
