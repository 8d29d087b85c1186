/**
 * groups: big groups through the daemon's MLS layer (daemon/mls, native crypto provider), at 1,000, 2,000, 5,000 and
 * 10,000 members (`--sizes 1000,2000` for a quick run). Per size:
 *
 * - setup (untimed beyond `setup_s`): KeyPackages for everyone made up front, one Commit by the creator adding all
 *   N-1 others, and one of them (the member) joining from its Welcome;
 * - commit_ms: the creator's add-one Commit (`addMembers`, KeyPackage check included); process_ms: the member
 *   processing it (`processIncoming`); join_ms: the new member joining from its Welcome (`joinFromWelcome`, every
 *   RFC 9420 §12.4.3.1 check on the tree); each the median of `repeats` rounds, none adopted, so every round adds
 *   to a group of N;
 * - send_ms / receive_ms: one application message encrypted by the creator and processed by the member (median);
 * - state_bytes: the group state the daemon writes with every message it handles (`serializeState`'s `core`),
 *   tree_bytes: the ratchet tree, which daemon/store writes once per epoch (named by its tree hash), and
 *   save_ms / load_ms: serialising the state (not the tree) and deserialising both, which the daemon does around
 *   every message it handles.
 *
 * commit_cpu_ms, process_cpu_ms, join_cpu_ms: the same steps' process CPU time (median), steadier than the wall
 * clock on a shared machine. The credential check accepts everyone: the directory and its pins are not under test. MLS only: no store, no
 * network (`npm run bench -- e2e` covers those at two members).
 */
import { spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import { getSuite } from "../../crypto/index.js"
import type { CredentialCheck } from "../../daemon/mls/credentialCheck.js"
import { addMembers, createChatGroup, joinFromWelcome } from "../../daemon/mls/group.js"
import type { ChatGroup } from "../../daemon/mls/groupState.js"
import { deserializeState, serializeState } from "../../daemon/mls/groupState.js"
import { encryptText, processIncoming } from "../../daemon/mls/message.js"
import { freshKeyPackage, user } from "../daemon/mls/helpers.js"
import { spawnDaemon } from "../helpers/daemon.js"
import { spawnBenchServer } from "../helpers/spawnServer.js"
import { median, quantile, report } from "./report.js"

const defaultSizes = [1000, 2000, 5000, 10000]
const repeats = 3
const messageRepeats = 5
const accept: CredentialCheck = async () => ({ kind: "accepted" })

interface Figures {
  commit_ms: number
  process_ms: number
  join_ms: number
  commit_cpu_ms: number
  process_cpu_ms: number
  join_cpu_ms: number
  send_ms: number
  receive_ms: number
  state_bytes: number
  tree_bytes: number
  save_ms: number
  load_ms: number
  setup_s: number
}

/** The cpu time of every step, summed over its repeats' median: see `cpuMs`. */
const cpu = new Map<string, number[]>()

/**
 * Wall-clock ms of `op`, and its process CPU time (both threads: the crypto worker's included) under `name`: on a
 * machine shared with other work the wall clock measures the load as much as the code, CPU time much less so.
 */
async function timed<T>(op: () => Promise<T>, name?: string): Promise<[T, number]> {
  const c0 = process.cpuUsage()
  const t0 = performance.now()
  const r = await op()
  const ms = performance.now() - t0
  const c = process.cpuUsage(c0)
  if (name !== undefined) cpu.set(name, [...(cpu.get(name) ?? []), (c.user + c.system) / 1000])
  return [r, ms]
}

const cpuMs = (name: string) => round(median(cpu.get(name) ?? []))

const round = (ms: number) => Number(ms.toFixed(2))

async function measure(size: number): Promise<Figures> {
  cpu.clear()
  const cs = await getSuite()
  const setupStart = performance.now()
  const creator = user("u0")
  const others = Array.from({ length: size - 1 }, (_, i) => user(`u${i + 1}`))
  const kps = await Promise.all(others.map((u) => freshKeyPackage(u, cs)))
  let group: ChatGroup = await createChatGroup({
    name: "bench",
    creator: { identity: creator.identity, keys: creator.keys },
    now: Date.now(),
    cs,
  })
  const filled = await addMembers(
    group,
    others.map((u, i) => ({
      identity: u.identity,
      signaturePublicKey: u.keys.publicKey,
      keyPackage: kps[i]!.keyPackage,
    })),
    Date.now(),
    cs,
    accept,
  )
  group = filled.state
  let member = (await joinFromWelcome(filled.welcome!, kps[0]!.keyPackage, kps[0]!.privateKeyPackage, cs, accept)).state
  const setup_s = (performance.now() - setupStart) / 1000

  const commit: number[] = []
  const process: number[] = []
  const join: number[] = []
  for (let r = 0; r < repeats; r++) {
    const newcomer = user(`new${r}`)
    const kp = await freshKeyPackage(newcomer, cs)
    const invitee = {
      identity: newcomer.identity,
      signaturePublicKey: newcomer.keys.publicKey,
      keyPackage: kp.keyPackage,
    }
    const [pending, commitMs] = await timed(() => addMembers(group, [invitee], Date.now(), cs, accept), "commit")
    const [processed, processMs] = await timed(() => processIncoming(member, pending.commit, cs, accept), "process")
    if (processed.kind !== "commit" || processed.epoch !== pending.epoch) throw new Error("commit not processed")
    const [joined, joinMs] = await timed(
      () => joinFromWelcome(pending.welcome!, kp.keyPackage, kp.privateKeyPackage, cs, accept),
      "join",
    )
    if (joined.members.length !== size + 1) throw new Error(`joined a group of ${joined.members.length}`)
    commit.push(commitMs)
    process.push(processMs)
    join.push(joinMs)
  }

  const send: number[] = []
  const receive: number[] = []
  for (let r = 0; r < messageRepeats; r++) {
    const [sent, sendMs] = await timed(() => encryptText(group, `hello ${r}`, cs))
    const [got, receiveMs] = await timed(() => processIncoming(member, sent.message, cs, accept))
    if (got.kind !== "application" || got.text !== `hello ${r}`) throw new Error("message not received")
    group = sent.state
    member = got.state
    send.push(sendMs)
    receive.push(receiveMs)
  }

  const save: number[] = []
  const load: number[] = []
  let stateBytes = 0
  let treeBytes = 0
  for (let r = 0; r < messageRepeats; r++) {
    // What the daemon writes per message: the state without the tree (stored once per epoch, by its hash).
    const [saved, saveMs] = await timed(async () => serializeState(member))
    const tree = saved.tree()
    const [, loadMs] = await timed(async () => deserializeState({ ...saved, tree: () => tree }))
    stateBytes = saved.core.length
    treeBytes = tree.length
    save.push(saveMs)
    load.push(loadMs)
  }

  return {
    commit_ms: round(median(commit)),
    process_ms: round(median(process)),
    join_ms: round(median(join)),
    commit_cpu_ms: cpuMs("commit"),
    process_cpu_ms: cpuMs("process"),
    join_cpu_ms: cpuMs("join"),
    send_ms: round(median(send)),
    receive_ms: round(median(receive)),
    state_bytes: stateBytes,
    tree_bytes: treeBytes,
    save_ms: round(median(save)),
    load_ms: round(median(load)),
    setup_s: Number(setup_s.toFixed(1)),
  }
}

const here = dirname(fileURLToPath(import.meta.url))
const daemonMessages = Number(process.env.GROUPS_DAEMON_MESSAGES ?? 200)
const daemonWarmUp = 20

interface DaemonFigures {
  members: number
  to_daemon_p50_ms: number
  to_daemon_p99_ms: number
  from_daemon_p50_ms: number
  from_daemon_p99_ms: number
  messages: number
  join_s: number
}

async function daemonAtScale(members: number): Promise<DaemonFigures> {
  const dir = mkdtempSync(join(tmpdir(), "bench-groups-"))
  // The Welcome of a Commit adding 999 carries their ratchet tree (~250 kB): over the default 256 KiB message cap.
  const server = await spawnBenchServer(join(dir, "server.db"), ["--max-message-kib", "1024"])
  const alice = await spawnDaemon({ server: server.url, profile: "alice", testClock: false, validate: false })
  const sim = spawn(process.execPath, ["--import", "tsx", join(here, "_bigGroupMembers.ts")], {
    stdio: ["pipe", "pipe", "inherit"],
  })
  try {
    await alice.client.call("identity.register", { username: "alice" })
    await alice.client.call("pool.refresh")
    await alice.client.call("events.subscribe", { events: ["message.received", "group.joined"] })
    // Lines of the members' process, by kind, and who waits for which.
    const heard = new Map<string, number>()
    const waiting = new Map<string, () => void>()
    const arrive = (key: string) => {
      heard.set(key, performance.now())
      waiting.get(key)?.()
    }
    const when = (key: string, what: string, timeoutMs: number) =>
      new Promise<number>((resolve, reject) => {
        if (heard.has(key)) return resolve(heard.get(key)!)
        const timer = setTimeout(() => reject(new Error(`no ${what} within ${timeoutMs} ms`)), timeoutMs)
        waiting.set(key, () => {
          clearTimeout(timer)
          resolve(heard.get(key)!)
        })
      })
    sim.once("exit", () => arrive("exit"))
    createInterface({ input: sim.stdout! }).on("line", (line) => {
      const m = JSON.parse(line) as { ready?: string; got?: string; sent?: string }
      if (m.ready !== undefined) arrive("ready")
      if (m.got !== undefined) arrive(`got ${m.got}`)
    })
    alice.client.on("message.received", (p) => arrive(`received ${p.text}`))
    alice.client.on("group.joined", () => arrive("joined"))

    const t0 = performance.now()
    sim.stdin!.write(JSON.stringify({ url: server.url, members: members - 1, target: "alice" }) + "\n")
    await Promise.race([when("ready", "group from the members' process", 600_000), when("exit", "", 600_000)])
    if (heard.has("exit")) throw new Error(`the members' process exited with ${sim.exitCode}`)
    await when("joined", "group.joined at alice", 600_000)
    const join_s = (performance.now() - t0) / 1000
    const group = (await alice.client.call("group.list")).groups[0]!.groupId

    const toDaemon: number[] = []
    const fromDaemon: number[] = []
    for (let i = 0; i < daemonWarmUp + daemonMessages; i++) {
      const inbound = `in ${i}`
      const start = performance.now()
      sim.stdin!.write(JSON.stringify({ send: inbound }) + "\n")
      const got = await when(`received ${inbound}`, `alice receiving "${inbound}"`, 60_000)
      const outbound = `out ${i}`
      const sent = performance.now()
      await alice.client.call("message.send", { group, text: outbound })
      const read = await when(`got ${outbound}`, `m0 reading "${outbound}"`, 60_000)
      if (i < daemonWarmUp) continue
      toDaemon.push(got - start)
      fromDaemon.push(read - sent)
    }
    return {
      members,
      to_daemon_p50_ms: round(quantile(toDaemon, 0.5)),
      to_daemon_p99_ms: round(quantile(toDaemon, 0.99)),
      from_daemon_p50_ms: round(quantile(fromDaemon, 0.5)),
      from_daemon_p99_ms: round(quantile(fromDaemon, 0.99)),
      messages: daemonMessages,
      join_s: Number(join_s.toFixed(1)),
    }
  } finally {
    sim.stdin!.end()
    sim.kill()
    await alice.stop()
    await server.stop()
    rmSync(alice.tmp, { recursive: true, force: true })
    rmSync(dir, { recursive: true, force: true })
  }
}

export default async function groups(flags: string[] = []): Promise<void> {
  const { values } = parseArgs({
    args: flags,
    options: { sizes: { type: "string" }, "daemon-members": { type: "string", default: "1000" } },
  })
  const sizes = values.sizes === undefined ? defaultSizes : values.sizes.split(",").map(Number)
  if (sizes.some((n) => !Number.isInteger(n) || n < 2)) throw new Error(`--sizes takes group sizes ≥ 2, e.g. 1000,2000`)
  const result: Record<string, Figures> = {}
  for (const size of sizes) {
    result[size] = await measure(size)
    console.error(`groups: ${size} members: ${JSON.stringify(result[size])}`)
  }
  const daemonMembers = Number(values["daemon-members"])
  const daemon = daemonMembers > 0 ? await daemonAtScale(daemonMembers) : undefined
  if (daemon !== undefined) console.error(`groups: daemon at scale: ${JSON.stringify(daemon)}`)
  report(
    "groups",
    [
      ...sizes.map((n) => ({ members: n, ...result[n]! })),
      ...(daemon === undefined
        ? []
        : [
            {
              members: `daemon ${daemon.members}`,
              "to daemon p50/p99 ms": `${daemon.to_daemon_p50_ms}/${daemon.to_daemon_p99_ms}`,
              "from daemon p50/p99 ms": `${daemon.from_daemon_p50_ms}/${daemon.from_daemon_p99_ms}`,
            },
          ]),
    ],
    { ...result, ...(daemon !== undefined && { daemon }) },
  )
}
