import assert from "node:assert/strict"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, it } from "node:test"
import { DaemonClient } from "../../daemon-client/index.js"
import { alive, startWorld } from "../helpers/start.js"

const serverLine = /^server\s+(http:\/\/127\.0\.0\.1:\d+)\s+\((.*)\)$/m
const pidOf = (stdout: string) => Number(/^daemon .* pid (\d+)/m.exec(stdout)?.[1])

async function answers(url: string): Promise<boolean> {
  try {
    return (await fetch(`${url}/v1/health`)).ok
  } catch {
    return false
  }
}

describe("npm start without a terminal", () => {
  it("starts a local server and daemons in the background, lets a second profile use that server, and --stop stops them", async (t) => {
    const w = startWorld()
    const other = startWorld() // another user of this machine: no record of the local server
    t.after(() => {
      w.cleanup(["alice", "bob"])
      other.cleanup(["carol"])
    })

    // First profile: nothing runs yet, so a local server starts, with its database under XDG_DATA_HOME.
    const a = await w.run(["--profile", "alice", "--port", "0"])
    assert.equal(a.code, 0, a.stderr)
    const [, url, note] = serverLine.exec(a.stdout)!
    assert.match(note!, /^started now: pid \d+, database .*\/data\/mls-chat\/server\/server\.db, log .*server\.log$/)
    assert.ok(existsSync(join(w.dir, "data", "mls-chat", "server", "server.db")))
    assert.match(a.stdout, /^user\s+alice /m)
    assert.match(a.stdout, /^pool\s+32\/32 available, last resort yes, health good$/m)
    assert.ok(existsSync(join(w.dir, "state", "mls-chat", "alice.log")))
    const alicePid = pidOf(a.stdout)
    assert.ok(alive(alicePid), "the daemon keeps running after start exits")

    // Second profile on this machine: uses the server that runs, registers on its first run.
    const b = await w.run(["--profile", "bob"])
    assert.equal(b.code, 0, b.stderr)
    assert.equal(serverLine.exec(b.stdout)![1], url)
    assert.match(serverLine.exec(b.stdout)![2]!, /^local, pid \d+/)
    assert.match(b.stdout, /^user\s+bob /m)

    // Another user whose start never ran a server: finds the one answering at the default address (--port).
    const c = await other.run(["--profile", "carol", "--port", new URL(url!).port])
    assert.equal(c.code, 0, c.stderr)
    assert.deepEqual(serverLine.exec(c.stdout)!.slice(1), [url, "already running (not started by this command)"])

    // The two npm start profiles really share that server: alice invites bob and he reads her message.
    const alice = await DaemonClient.connect(w.socket("alice"))
    const bob = await DaemonClient.connect(w.socket("bob"))
    t.after(() => {
      alice.close()
      bob.close()
    })
    await bob.call("events.subscribe", {})
    const joined = bob.next("group.joined", () => true, 60_000)
    await alice.call("group.create", { name: "team" })
    await alice.call("group.invite", { group: "team", user: "bob" })
    assert.equal((await joined).name, "team")
    const got = bob.next("message.received", () => true, 60_000)
    await alice.call("message.send", { group: "team", text: "hello bob" })
    assert.equal((await got).text, "hello bob")

    // Running it again reuses the running daemon.
    const again = await w.run(["--profile", "alice"])
    assert.equal(again.code, 0, again.stderr)
    assert.equal(pidOf(again.stdout), alicePid)
    assert.match(again.stdout, /\(already running\)/)

    // --stop where this command started no server: only the daemon stops.
    const carolPid = pidOf(c.stdout)
    const sc = await other.run(["--stop", "--profile", "carol"])
    assert.equal(sc.code, 0, sc.stderr)
    assert.equal(sc.stdout, `stopped the daemon of profile carol (pid ${carolPid})\n`)
    assert.equal(alive(carolPid), false)
    assert.ok(await answers(url!))

    // --stop stops the profile's daemon and the local server; other daemons stay.
    const [serverPid] = w.pids([])
    const sb = await w.run(["--stop", "--profile", "bob"])
    assert.equal(sb.code, 0, sb.stderr)
    assert.match(sb.stdout, /^stopped the daemon of profile bob \(pid \d+\)$/m)
    assert.match(sb.stdout, new RegExp(`^stopped the local server at ${url} \\(pid ${serverPid}\\)$`, "m"))
    assert.equal(alive(serverPid!), false)
    assert.equal(await answers(url!), false)
    const record = JSON.parse(readFileSync(join(w.dir, "state", "mls-chat", "server.json"), "utf8"))
    assert.deepEqual(record, { url }, "the URL stays known, the pid is gone")
    assert.ok(alive(alicePid))

    // A registered profile whose local server is gone: it starts again on the same address and database.
    const back = await w.run(["--profile", "alice"])
    assert.equal(back.code, 0, back.stderr)
    const [, backUrl, backNote] = serverLine.exec(back.stdout)!
    assert.equal(backUrl, url)
    assert.match(backNote!, /^started now: /)
    assert.equal(pidOf(back.stdout), alicePid)
    assert.ok(await answers(url!))

    const sa = await w.run(["--stop", "--profile", "alice"])
    assert.equal(sa.code, 0, sa.stderr)
    assert.equal(alive(alicePid), false)
    assert.match(sa.stdout, /^stopped the local server at /m)
    const none = await w.run(["--stop", "--profile", "alice"])
    assert.equal(none.stdout, "no daemon serves profile alice\n")
  })

  it("refuses bad flags with usage (status 2) and a server that does not answer in one line (status 1)", async (t) => {
    const w = startWorld()
    t.after(() => w.cleanup([]))
    const bad = await w.run(["--port", "x"])
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /^mls-chat: --port must be an integer from 0 to 65535\nusage: npm start/)
    const down = await w.run(["--profile", "dan", "--server", "http://127.0.0.1:9"])
    assert.equal(down.code, 1)
    assert.equal(down.stderr, "mls-chat: no mls-server answers at http://127.0.0.1:9 (is it running? check the URL)\n")
    assert.equal(existsSync(join(w.dir, "data", "mls-chat", "dan")), false, "nothing was started")
  })
})
