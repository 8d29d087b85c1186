/**
 * e2e: the whole path of a chat message. The server runs in its own process, alice's and bob's daemons are child
 * processes (mlsd), and this process is their frontend on the daemons' sockets.
 *
 * - latency: message.send on alice's socket to bob's message.received notification, one message at a time;
 * - throughput: many message.send calls in flight until bob has received (and persisted) every one; every message is
 *   stored in alice's outbox and history and in bob's history with its MLS state, though not one transaction each:
 *   concurrent sends share one (the send batcher's group commit), bob applies a burst of arrivals in one, and the
 *   outbox posts up to 64 in one request. The run fails unless every message sent was received exactly once
 *   (sent = received = N) within a bound; `queued` answers (the server not taking a message at once) are counted;
 * - Commits: one add Commit (createCommit) and a member processing it, at group sizes 2, 16, 64 and 256. This part
 *   runs the daemon's pure MLS layer (daemon/mls/group.ts) in this process with crypto getSuite(): 256 real daemons
 *   are too heavy for this machine. It measures MLS only, not the store or the network.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { getSuite } from "../../crypto/index.js"
import type { CredentialCheck } from "../../daemon/mls/credentialCheck.js"
import { addMembers, createChatGroup, joinFromWelcome } from "../../daemon/mls/group.js"
import type { ChatGroup } from "../../daemon/mls/groupState.js"
import { processIncoming } from "../../daemon/mls/message.js"
import { history } from "../helpers/chat.js"
import { spawnDaemon, type TestDaemon } from "../helpers/daemon.js"
import { spawnBenchServer } from "../helpers/spawnServer.js"
import { freshKeyPackage, user, type User } from "../daemon/mls/helpers.js"
import { median, quantile, report } from "./report.js"

const latencyMessages = Number(process.env.E2E_LATENCY_MESSAGES ?? 500)
const throughputMessages = Number(process.env.E2E_MESSAGES ?? 5000)
const inFlight = Number(process.env.E2E_IN_FLIGHT ?? 64)
const sizes = [2, 16, 64, 256] as const
const commitRepeats = 5
/** The longest wait for bob to receive the last message after the last send was answered. */
const finalWaitMs = Number(process.env.E2E_FINAL_WAIT_MS ?? 120_000)

async function daemon(server: string, name: string): Promise<TestDaemon & { tmp: string }> {
  const d = await spawnDaemon({ server, profile: name, testClock: false, validate: false })
  await d.client.call("identity.register", { username: name })
  await d.client.call("pool.refresh")
  return d
}

async function chat(serverUrl: string) {
  const alice = await daemon(serverUrl, "alice")
  const bob = await daemon(serverUrl, "bob")
  try {
    await bob.client.call("events.subscribe", { events: ["message.received", "group.joined"] })
    const g = await alice.client.call("group.create", { name: "bench" })
    const joined = bob.client.next("group.joined", (p) => p.groupId === g.groupId, 30_000)
    await alice.client.call("group.invite", { group: g.groupId, user: "bob" })
    await joined

    // Bob's notifications, by text, with the time they arrived here.
    const arrived = new Map<string, number>()
    const waiting = new Map<string, () => void>()
    bob.client.on("message.received", (p) => {
      arrived.set(p.text, performance.now())
      waiting.get(p.text)?.()
    })
    const heard = (text: string) =>
      arrived.has(text) ? Promise.resolve() : new Promise<void>((r) => waiting.set(text, r))

    // Warm-up: JIT, connections, the first ratchet steps.
    for (let i = 0; i < 50; i++) {
      const h = heard(`w${i}`)
      await alice.client.call("message.send", { group: g.groupId, text: `w${i}` })
      await h
    }

    const latencies: number[] = []
    for (let i = 0; i < latencyMessages; i++) {
      const text = `l${i}`
      const h = heard(text)
      const t0 = performance.now()
      await alice.client.call("message.send", { group: g.groupId, text })
      await h
      latencies.push(arrived.get(text)! - t0)
    }

    const texts = Array.from({ length: throughputMessages }, (_, i) => `t${i} ${"x".repeat(100)}`)
    const last = heard(texts.at(-1)!)
    const t0 = performance.now()
    let next = 0
    let sent = 0
    let queued = 0
    const worker = async () => {
      while (next < texts.length) {
        const r = await alice.client.call("message.send", { group: g.groupId, text: texts[next++]! })
        sent++
        if (r.state === "queued") queued++
      }
    }
    await Promise.all(Array.from({ length: inFlight }, worker))
    const sentAll = performance.now()
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      last,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const got = texts.filter((t) => arrived.has(t)).length
          reject(new Error(`bob received ${got} of ${texts.length} within ${finalWaitMs} ms of the last send`))
        }, finalWaitMs)
      }),
    ]).finally(() => clearTimeout(timer))
    const elapsedMs = performance.now() - t0
    const received = texts.filter((t) => arrived.has(t)).length
    // The last one arriving does not prove the others did: count them, and each once in bob's history.
    const stored = (await history(bob.client, g.groupId)).filter((t) => t.startsWith("t"))
    if (sent !== texts.length || received !== texts.length || stored.length !== texts.length) {
      throw new Error(`sent ${sent}, received ${received}, stored ${stored.length}, of ${texts.length} messages`)
    }
    return {
      p50_ms: quantile(latencies, 0.5),
      p99_ms: quantile(latencies, 0.99),
      msgs_per_s: Math.round(received / (elapsedMs / 1000)),
      send_calls_per_s: Math.round(texts.length / ((sentAll - t0) / 1000)),
      sent,
      received,
      queued,
    }
  } finally {
    await Promise.all([alice, bob].map((d) => d.stop()))
    for (const d of [alice, bob]) rmSync(d.tmp, { recursive: true, force: true })
  }
}

/** Times one add Commit and one member processing it, at each group size (pure MLS layer). */
async function commits() {
  const cs = await getSuite()
  const accept: CredentialCheck = async () => ({ kind: "accepted" })
  const commitMs: Record<string, number> = {}
  const processMs: Record<string, number> = {}
  for (const size of sizes) {
    const creator = user("u0")
    let group: ChatGroup = await createChatGroup({
      name: "bench",
      creator: { identity: creator.identity, keys: creator.keys },
      now: Date.now(),
      cs,
    })
    // Everyone but the creator at once, and member u1 joins from the Welcome to process what follows.
    const others: User[] = Array.from({ length: size - 1 }, (_, i) => user(`u${i + 1}`))
    const kps = await Promise.all(others.map((u) => freshKeyPackage(u, cs)))
    const invitees = others.map((u, i) => ({
      identity: u.identity,
      signaturePublicKey: u.keys.publicKey,
      keyPackage: kps[i]!.keyPackage,
    }))
    const filled = await addMembers(group, invitees, Date.now(), cs, accept)
    group = filled.state
    const member = (await joinFromWelcome(filled.welcome!, kps[0]!.keyPackage, kps[0]!.privateKeyPackage, cs, accept))
      .state
    const c: number[] = []
    const p: number[] = []
    for (let r = 0; r < commitRepeats; r++) {
      const nu = user(`new${r}`)
      const kp = await freshKeyPackage(nu, cs)
      const invitee = { identity: nu.identity, signaturePublicKey: nu.keys.publicKey, keyPackage: kp.keyPackage }
      const t0 = performance.now()
      const pending = await addMembers(group, [invitee], Date.now(), cs, accept)
      const t1 = performance.now()
      await processIncoming(member, pending.commit, cs, accept)
      const t2 = performance.now()
      c.push(t1 - t0)
      p.push(t2 - t1)
      // Neither state is adopted: every round adds to the group at the same size.
    }
    commitMs[size] = Number(median(c).toFixed(2))
    processMs[size] = Number(median(p).toFixed(2))
  }
  return { commitMs, processMs }
}

export default async function e2e(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "bench-e2e-"))
  const server = await spawnBenchServer(join(dir, "server.db"))
  let figures: Awaited<ReturnType<typeof chat>>
  try {
    figures = await chat(server.url)
  } finally {
    await server.stop()
    rmSync(dir, { recursive: true, force: true })
  }
  const { commitMs, processMs } = await commits()
  const result = {
    p50_ms: Number(figures.p50_ms.toFixed(2)),
    p99_ms: Number(figures.p99_ms.toFixed(2)),
    msgs_per_s: figures.msgs_per_s,
    send_calls_per_s: figures.send_calls_per_s,
    sent: figures.sent,
    received: figures.received,
    queued: figures.queued,
    commit_ms: commitMs,
    process_ms: processMs,
    latency_messages: latencyMessages,
    throughput_messages: throughputMessages,
    in_flight: inFlight,
    targets: { p99_ms: 20, msgs_per_s: 1500 },
    notes:
      "latency and throughput: real server process and two mlsd child processes, every message persisted on both " +
      "sides (synchronous=FULL); commit_ms/process_ms: one add Commit at each group size and one member processing " +
      `it, pure MLS layer (daemon/mls) with crypto getSuite(), median of ${commitRepeats}, no store or network`,
  }
  report(
    "e2e",
    [
      { what: "send → received p50 (ms)", value: result.p50_ms },
      { what: "send → received p99 (ms)", value: result.p99_ms },
      { what: "sustained msgs/s (persisted both sides)", value: result.msgs_per_s },
      { what: "messages sent = received (each once)", value: result.received },
      { what: "send answers `queued` (not taken at once)", value: result.queued },
      ...sizes.map((n) => ({ what: `add Commit at ${n} members (ms, MLS only)`, value: commitMs[n]! })),
      ...sizes.map((n) => ({ what: `process it at ${n} members (ms, MLS only)`, value: processMs[n]! })),
    ],
    result,
  )
}
