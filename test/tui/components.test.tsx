import { frame, press, waitForFrame } from "../helpers/ink.js" // first: it turns colours on before ink loads
import assert from "node:assert/strict"
import { describe, it } from "node:test"
import { render } from "ink-testing-library"
import { GroupList } from "../../tui/components/GroupList.js"
import { InfoPanel } from "../../tui/components/InfoPanel.js"
import { InputLine } from "../../tui/components/InputLine.js"
import { maxScroll, MessagePane } from "../../tui/components/MessagePane.js"
import { PoolPanel } from "../../tui/components/PoolPanel.js"
import { StatusBar } from "../../tui/components/StatusBar.js"
import { helpRows } from "../../tui/execute.js"
import type { ChatMessage, GroupView } from "../../tui/state.js"
import { key, poolStatus, t0 } from "./fixtures.js"

function view(name: string, over: Partial<GroupView> = {}): GroupView {
  return {
    groupId: `id-${name}`,
    name,
    members: ["alice", "bob"],
    status: "active",
    unread: 0,
    messages: [],
    more: false,
    loaded: true,
    ...over,
  }
}

function msg(seq: number, text: string, over: Partial<ChatMessage> = {}): ChatMessage {
  return {
    key: `s${seq}`,
    seq,
    clientId: null,
    sender: "bob",
    text,
    at: t0 + seq * 60_000,
    own: false,
    state: "sent",
    ...over,
  }
}

describe("GroupList", () => {
  it("lists groups with unread counts and highlights the selected one", () => {
    const r = render(
      <GroupList
        groups={[view("team"), view("ops", { unread: 3 }), view("old", { status: "removed" })]}
        selected="id-team"
        width={22}
        height={8}
      />,
    )
    const f = frame(r)
    assert.match(f, /team/)
    assert.match(f, /ops\s+3/)
    assert.match(f, /old ✗/)
    // The selected row is drawn inverse (SGR 7), the others are not.
    const raw = r.lastFrame()!
    assert.ok(raw.includes("\x1b[7mteam"))
    assert.ok(!raw.includes("\x1b[7mops"))
    r.unmount()
  })

  it("says when there is no group", () => {
    const r = render(<GroupList groups={[]} selected={null} width={22} height={6} />)
    assert.match(frame(r), /none yet/)
    r.unmount()
  })
})

describe("MessagePane", () => {
  it("shows sender, local time and text, marks own, queued and refused messages", () => {
    const messages = [
      msg(1, "hello"),
      msg(2, "mine", { own: true, sender: "alice" }),
      msg(0, "waiting", { seq: null, key: "cq", own: true, sender: "alice", state: "queued" }),
      msg(0, "nope", { seq: null, key: "cr", own: true, sender: "alice", state: "refused", error: "not a member" }),
    ]
    const r = render(<MessagePane group={view("team", { messages })} scroll={0} width={70} height={12} now={t0} />)
    const f = frame(r)
    assert.match(f, /team \(alice, bob\)/)
    assert.match(f, /14:03 bob: hello/)
    assert.match(f, /14:04 ▸ alice: mine/)
    assert.match(f, /▸ alice: waiting \[queued\]/)
    assert.match(f, /▸ alice: nope \[refused\] not a member/)
    r.unmount()
  })

  it("shows the newest messages that fit, and older ones when scrolled up", () => {
    const messages = Array.from({ length: 30 }, (_, i) => msg(i + 1, `line ${i + 1}`))
    const group = view("team", { messages, more: true })
    const r = render(<MessagePane group={group} scroll={0} width={60} height={10} now={t0} />)
    let f = frame(r)
    assert.match(f, /line 30/)
    assert.doesNotMatch(f, /line 20\b/)
    assert.match(f, /↑ PgUp/)
    r.rerender(<MessagePane group={group} scroll={10} width={60} height={10} now={t0} />)
    f = frame(r)
    assert.match(f, /line 20\b/)
    assert.doesNotMatch(f, /line 30/)
    assert.match(f, /↓ 10 newer/)
    // Scrolled past the top: the oldest message heads a full pane.
    const max = maxScroll(messages, 56, 7)
    r.rerender(<MessagePane group={group} scroll={max} width={60} height={10} now={t0} />)
    f = frame(r)
    assert.match(f, /line 1\b[^]*line 7\b/)
    assert.doesNotMatch(f, /line 8\b/)
    assert.match(f, /↓ 23 newer/)
    r.unmount()
  })
})

describe("InputLine", () => {
  it("edits a line and submits it on Enter, also when text and Enter arrive in one chunk", async () => {
    const lines: string[] = []
    const r = render(<InputLine active prompt="team" onSubmit={(l) => lines.push(l)} />)
    await press(r, "h", "i", "x", "\x7f")
    await waitForFrame(r, (f) => f.includes("team› hi"))
    await press(r, "\r")
    await waitForFrame(r, (f) => !f.includes("hi"))
    await press(r, "/create a b\r")
    assert.deepEqual(lines, ["hi", "/create a b"])
    r.unmount()
  })

  it("takes no keys while another part has the focus", async () => {
    const lines: string[] = []
    const r = render(<InputLine active={false} prompt="" onSubmit={(l) => lines.push(l)} />)
    await press(r, "a", "\r")
    assert.equal(frame(r).trim(), "›")
    assert.deepEqual(lines, [])
    r.unmount()
  })
})

describe("StatusBar", () => {
  it("shows user, server, connection and pool health", () => {
    const r = render(
      <StatusBar
        user="alice"
        server="http://127.0.0.1:4000"
        serverState="connected"
        link={{ kind: "up" }}
        pool={{ available: 29, target: 32, health: "good" }}
      />,
    )
    assert.equal(frame(r), "alice @ 127.0.0.1:4000 │ server connected │ pool 29/32 ●")
    assert.ok(r.lastFrame()!.includes("\x1b[32mpool 29/32 ●"), "green when good")
    r.rerender(
      <StatusBar
        user="alice"
        server="http://127.0.0.1:4000"
        serverState="disconnected"
        link={{ kind: "up" }}
        pool={{ available: 2, target: 32, health: "critical" }}
      />,
    )
    assert.match(frame(r), /server disconnected │ pool 2\/32 ● critical/)
    assert.ok(r.lastFrame()!.includes("\x1b[31mpool 2/32 ●"), "red when critical")
    r.unmount()
  })

  it("says when the daemon is gone", () => {
    const r = render(
      <StatusBar
        user="alice"
        server={null}
        serverState={null}
        link={{ kind: "down", error: "no daemon answers on its socket", retryInMs: 2000 }}
        pool={null}
      />,
    )
    assert.equal(frame(r), "daemon gone: no daemon answers on its socket; retrying in 2 s")
    r.unmount()
  })
})

describe("PoolPanel", () => {
  it("shows keys by state, expiring soon, last upload, the last pass and who reserved which keys", () => {
    const status = poolStatus(30, {
      reserved: 1,
      spent: 1,
      expiringSoon: 2,
      lastError: { code: "server_unreachable", message: "connect ECONNREFUSED", at: t0 },
    })
    const keys = [
      key("AAA", { state: "reserved", reservedBy: "bob", reservedAt: t0 + 60_000 }),
      key("BBB", { state: "spent", reservedBy: "carol", reservedAt: t0 + 120_000 }),
      key("CCC"),
    ]
    const r = render(<PoolPanel status={status} keys={keys} width={78} height={16} now={t0} />)
    const f = frame(r)
    assert.match(f, /good ● 30\/32 available/)
    assert.match(f, /target 32: no claims measured: the configured target/)
    assert.match(f, /available 30 · reserved 1 · spent 1/)
    assert.match(f, /expiring soon 2/)
    assert.match(f, /last upload 14:02/)
    assert.match(f, /last pass 14:02 ok: generated 32, uploaded 32, withdrawn 0/)
    assert.match(f, /last error 14:02 server_unreachable: connect ECONNREFUSED/)
    const carol = f.indexOf("carol")
    const bob = f.indexOf("bob")
    assert.ok(carol > 0 && bob > carol, "newest reservation first")
    assert.match(f, /14:04\s+carol\s+key BBB/)
    assert.match(f, /now spent/)
    r.unmount()
  })
})

describe("InfoPanel", () => {
  it("shows every command and key of /help in the pane of an 80x24 terminal", () => {
    // 24 rows less the input line, the notices and the status bar: the pane App gives the panel.
    const r = render(<InfoPanel title="commands and keys" rows={helpRows} height={20} />)
    const f = frame(r)
    for (const [label] of helpRows) assert.ok(f.includes(label), `${label} shown`)
    assert.match(f, /commands and keys/)
    assert.match(f, /Esc closes/)
    assert.doesNotMatch(f, /more \(a taller terminal/)
    r.unmount()
  })

  it("counts the rows that do not fit instead of drawing past its border", () => {
    const rows = Array.from({ length: 30 }, (_, i) => [`member${i}`, "1 device"] as const)
    const r = render(<InfoPanel title="members of club" rows={rows} height={10} />)
    const lines = frame(r).split("\n")
    assert.equal(lines.length, 10)
    assert.match(lines[1]!, /members of club/)
    assert.match(lines[6]!, /member4 /)
    assert.match(lines[7]!, /… 25 more/)
    assert.match(lines[8]!, /Esc closes/)
    r.unmount()
  })
})
