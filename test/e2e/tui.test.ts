/**
 * The TUI end to end, in a real pseudo-terminal (tmux, 80x24): `npm start` for alice against a real server, bob a
 * real daemon driven through its socket. Creates, invites, sends and receives; survives its daemon's SIGKILL;
 * `/quit` leaves the daemon running.
 */
import assert from "node:assert/strict"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, it } from "node:test"
import { DaemonClient } from "../../daemon-client/index.js"
import { registered } from "../helpers/chat.js"
import { spawnServer } from "../helpers/spawnServer.js"
import { alive, root, startWorld } from "../helpers/start.js"
import { openTerminal } from "../helpers/tmux.js"

describe("TUI in a terminal", () => {
  it("chats with a daemon-driven user, survives a killed daemon, and /quit leaves the daemon running", async (t) => {
    const tmp = mkdtempSync(join(tmpdir(), "mls-tui-"))
    const server = await spawnServer(["--db", join(tmp, "server.db"), "--log-level", "warn"])
    const w = startWorld()
    t.after(async () => {
      term.kill()
      w.cleanup(["alice"])
      await server.stop()
      rmSync(tmp, { recursive: true, force: true })
    })
    const bob = await registered(t, server.url, "bob")

    const env = Object.fromEntries(
      ["HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR"].map((k) => [k, w.env[k]!]),
    )
    const term = openTerminal(
      [
        process.execPath,
        "--import",
        "tsx",
        join(root, "scripts", "start.ts"),
        "--profile",
        "alice",
        "--server",
        server.url,
      ],
      env,
    )
    // First run: the user name is asked, the profile's name offered.
    await term.waitFor((s) => s.includes("user name to register at") && s.includes("[alice]"))
    term.type("")
    // The status bar: user, server, connection, pool health.
    const host = server.url.replace("http://", "")
    await term.waitFor((s) => s.includes(`alice @ ${host} │ server connected │ pool 32/32 ●`))

    term.type("/create team")
    await term.waitFor((s) => s.includes("created team"))
    const joined = bob.client.next("group.joined", () => true, 60_000)
    term.type("/invite bob")
    await term.waitFor((s) => s.includes("invited bob"))
    assert.equal((await joined).name, "team")

    const got = bob.client.next("message.received", (m) => m.text === "hello bob", 60_000)
    term.type("hello bob")
    assert.equal((await got).sender, "alice")
    await bob.client.call("message.send", { group: "team", text: "hi alice" })
    await term.waitFor((s) => /\d\d:\d\d bob: hi alice/.test(s) && /▸ alice: hello bob/.test(s))

    // The daemon dies: the screen says so; a message sent meanwhile shows once a daemon runs again.
    const probe = await DaemonClient.connect(w.socket("alice"))
    const { pid } = await probe.call("daemon.status")
    probe.close()
    process.kill(pid, "SIGKILL")
    await term.waitFor((s) => s.includes("daemon gone: no daemon answers on its socket"))
    await bob.client.call("message.send", { group: "team", text: "sent while you were away" })
    const restart = await w.run(["--profile", "alice", "--server", server.url])
    assert.equal(restart.code, 0, restart.stderr)
    await term.waitFor((s) => s.includes("bob: sent while you were away") && s.includes("server connected"))

    term.type("/quit")
    const last = await term.waitFor((s) => s.includes("[exited 0]"))
    const newPid = Number(/keeps running \(pid (\d+)\)/.exec(last)?.[1])
    assert.ok(alive(newPid), "the daemon keeps running after /quit")
    // The pool as it is after the chat, below the summary printed before it opened (a first run's pool still empty).
    assert.match(last, /^pool {4}now 32\/32 available, last resort yes, health good$/m, last)
    const after = await DaemonClient.connect(w.socket("alice"))
    assert.equal((await after.call("daemon.status")).pid, newPid)
    after.close()
  })
})
