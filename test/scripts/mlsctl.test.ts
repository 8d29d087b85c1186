import assert from "node:assert/strict"
import { describe, it } from "node:test"
import { execFileSync } from "node:child_process"
import { buildCtl, type RunResult } from "../helpers/ctl.js"
import { startDaemon } from "../helpers/daemon.js"
import { registered } from "../helpers/chat.js"
import { startServer } from "../helpers/server.js"
import { maxTextLength } from "../../rpc-schema/daemon/message.js"

const ok = (r: RunResult) => {
  assert.equal(r.code, 0, `exit ${r.code}: ${r.stderr}`)
  return r.stdout
}
const json = (r: RunResult) => JSON.parse(ok(r))

describe("mlsctl", () => {
  it("runs every command between two real daemons, in human and --json modes", async (t) => {
    const [ctl, server] = await Promise.all([buildCtl(t), startServer(t)])
    const [a, b] = await Promise.all([
      startDaemon(t, { server: server.url, profile: "alice" }),
      startDaemon(t, { profile: "bob" }), // no --server: register names it
    ])
    // alice by --socket, bob by MLSD_SOCKET.
    const A = (...args: string[]) => ctl.run(["--socket", a.socketPath, ...args])
    const B = (...args: string[]) => ctl.run(args, { env: { MLSD_SOCKET: b.socketPath } })
    await Promise.all([a.client.call("events.subscribe", {}), b.client.call("events.subscribe", {})])

    assert.match(ok(await A("status")), /^user +not registered/m)
    assert.equal(json(await A("--json", "status")).username, null)
    assert.equal(ok(await A("whoami")), "not registered\n")

    assert.match(ok(await A("register", "alice")), new RegExp(`^registered alice on ${server.url}`))
    assert.deepEqual(json(await B("--json", "register", "bob", "--server", server.url)).server, server.url)
    assert.match(ok(await A("whoami")), /^user +alice$/m)
    assert.equal(json(await B("whoami", "--json")).registered, true)

    assert.equal(json(await A("--json", "pool", "refresh")).health, "good")
    assert.match(ok(await B("pool", "refresh")), /^health +good: \d+ available/m)
    assert.match(ok(await A("pool")), /^health +good: \d+ available, 0 reserved, 0 expiring soon, last resort ready$/m)
    assert.equal(json(await A("--json", "pool", "status")).health, "good")
    const keys = json(await A("--json", "pool", "list", "--state", "available", "--limit", "3")).keys
    assert.deepEqual(
      keys.map((k: any) => k.state),
      ["available", "available", "available"],
    )
    const listed = ok(await A("pool", "list", "--limit", "2"))
      .trimEnd()
      .split("\n")
    assert.equal(listed.length, 3)
    assert.match(listed[0]!, /^REF +STATE +SUITE +CREATED +NOT AFTER +NOTE$/)
    const status = ok(await A("status"))
    assert.match(status, /^user +alice$/m)
    assert.match(status, /^pool +good: /m)
    assert.match(status, new RegExp(`^server +${server.url} \\(connected\\)$`, "m"))

    const created = ok(await A("create", "team"))
    assert.match(created, /^[A-Za-z0-9_-]+\n$/)
    const id = created.trim()
    assert.deepEqual(
      json(await A("--json", "groups")).groups.map((g: any) => [g.groupId, g.name, g.members]),
      [[id, "team", ["alice"]]],
    )

    const joined = b.client.next("group.joined", (p) => p.groupId === id, 30_000)
    assert.equal(ok(await A("invite", "team", "bob")), "invited bob to team (epoch 1, members alice, bob)\n")
    await joined

    const received = b.client.next("message.received", (p) => p.text === "line two", 30_000)
    assert.match(ok(await A("send", "team", "hello", "bob")), /^sent #\d+\n$/)
    const sent = ok(
      await ctl.run(["--socket", a.socketPath, "--json", "send", "team"], { input: "line one\n\nline two\n" }),
    )
    const lines = sent
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l))
    assert.deepEqual(
      lines.map((m) => [m.state, m.text]),
      [
        ["sent", "line one"],
        ["sent", "line two"],
      ],
    )
    await received

    const history = ok(await B("history", "team"))
    assert.match(
      history,
      /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d {2}alice: hello bob\n.* {2}alice: line one\n.* {2}alice: line two\n$/,
    )
    const page = json(await B("--json", "history", "team", "--limit", "2"))
    assert.deepEqual(
      page.messages.map((m: any) => m.text),
      ["line one", "line two"],
    )
    assert.equal(page.more, true)
    const older = json(await B("--json", "history", "team", "--before", String(page.messages[0].seq)))
    assert.deepEqual(
      older.messages.map((m: any) => m.text),
      ["hello bob"],
    )
    assert.match(ok(await B("history", "team", "--limit", "1")), /^\(older messages: --before \d+\)\n/)

    const members = ok(await B("members", id))
    assert.match(members, /^team: epoch 1, active$/m)
    assert.match(members, /^alice +[0-9a-f]{16} +0 +\S{43}$/m)
    assert.match(members, /^bob +[0-9a-f]{16} +1 +\S{43} +\(this device\)$/m)
    assert.deepEqual(
      json(await A("--json", "members", "team")).members.map((m: any) => [m.username, m.self]),
      [
        ["alice", true],
        ["bob", false],
      ],
    )

    assert.equal(json(await B("--json", "rotate", "team")).epoch, 2)
    assert.equal(ok(await A("rotate", "team")), `new keys in ${id}: epoch 3\n`)
    // A group in sync has nothing to rejoin (test/daemon/externalJoin.test.ts rejoins one that lost sync).
    const inSync = await A("rejoin", "team")
    assert.equal(inSync.code, 1)
    assert.match(inSync.stderr, /^mlsctl: conflict: group "team" is in sync: nothing to rejoin\n$/)
    assert.match(
      ok(await A("groups")),
      new RegExp(`^NAME +MEMBERS +EPOCH +STATUS +ID\nteam +alice,bob +3 +active +${id}\n$`),
    )

    assert.match(ok(await A("methods")), /^group\.invite +add a user to a group$/m)
    assert.ok(json(await A("--json", "methods")).methods.some((m: any) => m.name === "message.send"))
    const viaArg = json(await A("--json", "call", "group.members", JSON.stringify({ group: "team" })))
    assert.equal(viaArg.members.length, 2)
    const viaStdin = await ctl.run(["--socket", a.socketPath, "call", "group.list"], { input: '{"unused": 1}' })
    assert.equal(viaStdin.code, 1, "strict params: an unknown field is refused")
    assert.match(viaStdin.stderr, /^mlsctl: invalid_params: /)
    const listedByCall = ok(await ctl.run(["--socket", a.socketPath, "call", "group.list"], { input: "{}\n" }))
    assert.equal(JSON.parse(listedByCall).groups[0].groupId, id)
    assert.match(listedByCall, /^{\n {2}"groups"/, "indented without --json")

    const bobOut = b.client.next("group.updated", (p) => p.groupId === id && p.reason === "removed", 30_000)
    assert.equal(ok(await A("remove", "team", "bob")), "removed bob from team (epoch 4, members alice)\n")
    await bobOut
    assert.equal(json(await B("--json", "groups")).groups[0].status, "removed")

    // bob leaves a second group: alice's daemon commits his proposal.
    const g2 = ok(await A("create", "g2")).trim()
    const joined2 = b.client.next("group.joined", (p) => p.groupId === g2, 30_000)
    ok(await A("invite", "g2", "bob"))
    await joined2
    const aliceSees = a.client.next("group.updated", (p) => p.groupId === g2 && p.removed.includes("bob"), 30_000)
    assert.match(ok(await B("leave", "g2")), /^asked to leave g2 /)
    await aliceSees
    assert.deepEqual(
      json(await A("--json", "members", "g2")).members.map((m: any) => m.username),
      ["alice"],
    )
  })

  it("stops inviting at the first failure and says which", async (t) => {
    const [ctl, server] = await Promise.all([buildCtl(t), startServer(t)])
    const [a, b] = await Promise.all([registered(t, server.url, "alice"), registered(t, server.url, "bob")])
    const A = (...args: string[]) => ctl.run(["--socket", a.socketPath, ...args])
    ok(await A("create", "team"))
    const joined = b.client.next("group.joined", () => true, 30_000)
    const r = await A("invite", "team", "bob", "nobody", "carol")
    await joined
    assert.equal(r.code, 1)
    assert.equal(r.stdout, "invited bob to team (epoch 1, members alice, bob)\n")
    assert.match(r.stderr, /^mlsctl: unknown_user: .*; stopped at nobody \(invited: bob\)\n$/)
    assert.deepEqual(json(await A("--json", "groups")).groups[0].members, ["alice", "bob"])
  })

  it("answers bad input with its exit status and changes nothing", async (t) => {
    const [ctl, server] = await Promise.all([buildCtl(t), startServer(t)])
    const a = await registered(t, server.url, "alice")
    const A = (...args: string[]) => ctl.run(["--socket", a.socketPath, ...args])
    ok(await A("create", "team"))
    ok(await A("send", "team", "before"))
    const texts = async () => json(await A("--json", "history", "team")).messages.map((m: any) => m.text)

    const gone = await ctl.run(["--socket", `${a.dataDir}/nothing.sock`, "status"])
    assert.equal(gone.code, 3)
    assert.match(
      gone.stderr,
      /cannot reach mlsd at \S+nothing\.sock \(ENOENT\): is it running\? Start it with "mlsd --socket /,
    )
    const byProfile = await ctl.run(["--profile", "nobody-here", "groups"], { env: { XDG_RUNTIME_DIR: a.dataDir } })
    assert.equal(byProfile.code, 3)
    assert.match(byProfile.stderr, /nobody-here\.sock .*"mlsd --profile nobody-here"/)

    const badJson = await A("call", "message.send", "{not json")
    assert.equal(badJson.code, 2)
    assert.match(badJson.stderr, /^mlsctl: params are not JSON: /)
    const unknown = await A("frobnicate")
    assert.equal(unknown.code, 2)
    assert.match(
      unknown.stderr,
      /unknown command "frobnicate"; commands: status, register, whoami, pool, groups, create/,
    )
    for (const args of [["history", "team", "--limit", "many"], ["send", "team", "--limit", "3", "x"], ["members"]]) {
      const r = await A(...args)
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`)
    }
    assert.equal((await A("--timeout", "0", "status")).code, 2)

    const missing = await A("members", "no-such-group")
    assert.equal(missing.code, 1)
    assert.match(missing.stderr, /^mlsctl: not_found: /)
    // A group id may start with "-" (base64url): it is a group to look up, not an unknown flag.
    const dashed = await A("members", "-M5xq0Vd2cRl8eKzT4w9bAg")
    assert.equal(dashed.code, 1, dashed.stderr)
    assert.match(dashed.stderr, /^mlsctl: not_found: .*-M5xq0Vd2cRl8eKzT4w9bAg/)
    const asJson = await A("--json", "members", "no-such-group")
    assert.equal(asJson.code, 1)
    assert.equal(JSON.parse(asJson.stderr).data.code, "not_found")
    const noMethod = await A("call", "no.such")
    assert.equal(noMethod.code, 1)
    assert.match(noMethod.stderr, /^mlsctl: method_not_found: /)

    const long = await A("send", "team", "x".repeat(maxTextLength + 1))
    assert.equal(long.code, 1)
    assert.match(long.stderr, new RegExp(`^mlsctl: invalid_params: .*/text: .*${maxTextLength}`))
    assert.equal(long.stdout, "")
    ok(await A("send", "team", "x".repeat(maxTextLength)))
    assert.deepEqual(await texts(), ["before", "x".repeat(maxTextLength)])
    assert.equal((await A("status")).code, 0, "the daemon lives on")
  })

  it("prints help and a bash completion generated from the command table, with no daemon", async (t) => {
    const ctl = await buildCtl(t)
    const help = ok(await ctl.run(["--help"]))
    for (const line of [/^ {2}send GROUP \[TEXT…\] +send a text message to a group$/m, /^ {2}3 +the daemon cannot/m])
      assert.match(help, line)
    const send = ok(await ctl.run(["send", "--help"]))
    assert.match(send, /^usage: mlsctl \[GLOBAL FLAGS\] send GROUP \[TEXT…\]$/m)
    assert.match(send, /^send a text message to a group \(message\.send\)$/m)
    assert.match(send, /^ {2}GROUP +group id, or a unique group name$/m, "the param's description from rpc-schema")
    assert.equal((await ctl.run([])).code, 2)

    const script = ok(await ctl.run(["completion", "bash"]))
    const complete = (...words: string[]) =>
      execFileSync(
        "bash",
        [
          "-c",
          `${script}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}; _mlsctl; echo "\${COMPREPLY[*]}"`,
        ],
        { encoding: "utf8" },
      )
        .trim()
        .split(" ")
    assert.deepEqual(complete("mlsctl", "po"), ["pool"])
    assert.deepEqual(complete("mlsctl", "pool", "").sort(), ["--help", "list", "refresh", "status"])
    assert.deepEqual(complete("mlsctl", "--json", "pool", "list", "--").sort(), ["--help", "--limit", "--state"])
    assert.ok(complete("mlsctl", "call", "group.").includes("group.selfUpdate"))
    assert.deepEqual(complete("mlsctl", "watch", "--events", "message.r"), ["message.received", "message.refused"])
  })
})
