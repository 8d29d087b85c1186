/**
 * Profiles the measured steps of `npm run bench -- groups` at one size, without the setup:
 * `npx tsx test/bench/_profileGroups.ts SIZE [OUT_DIR]` writes commit, process, join, send, receive, save and load
 * `.cpuprofile`s (V8's sampling profiler through node:inspector, 100 µs interval; open them in Chrome DevTools or
 * VS Code) and prints each step's top functions by self time. Samples, not wall-clock figures: the share of each
 * function stays meaningful on a loaded machine.
 */
import { writeFileSync, mkdirSync } from "node:fs"
import { Session } from "node:inspector/promises"
import { join } from "node:path"
import { getSuite } from "../../crypto/index.js"
import type { CredentialCheck } from "../../daemon/mls/credentialCheck.js"
import { addMembers, createChatGroup, joinFromWelcome } from "../../daemon/mls/group.js"
import { deserializeState, serializeState } from "../../daemon/mls/groupState.js"
import { encryptText, processIncoming } from "../../daemon/mls/message.js"
import { freshKeyPackage, user } from "../daemon/mls/helpers.js"

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  hitCount?: number
}

const size = Number(process.argv[2] ?? 1000)
const outDir = process.argv[3] ?? `/tmp/profile-groups-${size}`
const accept: CredentialCheck = async () => ({ kind: "accepted" })
const session = new Session()
session.connect()
await session.post("Profiler.enable")
await session.post("Profiler.setSamplingInterval", { interval: 100 })
mkdirSync(outDir, { recursive: true })

async function profiled<T>(name: string, op: () => Promise<T>): Promise<T> {
  await session.post("Profiler.start")
  const t0 = performance.now()
  const r = await op()
  const ms = performance.now() - t0
  const { profile } = (await session.post("Profiler.stop")) as { profile: { nodes: ProfileNode[] } }
  writeFileSync(join(outDir, `${name}.cpuprofile`), JSON.stringify(profile))
  const self = new Map<string, number>()
  let total = 0
  for (const n of profile.nodes) {
    const where = `${n.callFrame.functionName || "(anonymous)"} ${n.callFrame.url.replace(/.*node_modules\//, "")}:${n.callFrame.lineNumber + 1}`
    self.set(where, (self.get(where) ?? 0) + (n.hitCount ?? 0))
    total += n.hitCount ?? 0
  }
  console.log(`\n${name}: ${ms.toFixed(1)} ms, ${total} samples`)
  for (const [where, hits] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 15))
    console.log(`  ${((100 * hits) / total).toFixed(1).padStart(5)}%  ${where}`)
  return r
}

const cs = await getSuite()
const creator = user("u0")
const others = Array.from({ length: size - 1 }, (_, i) => user(`u${i + 1}`))
const kps = await Promise.all(others.map((u) => freshKeyPackage(u, cs)))
const group0 = await createChatGroup({ name: "bench", creator, now: Date.now(), cs })
const filled = await addMembers(
  group0,
  others.map((u, i) => ({
    identity: u.identity,
    signaturePublicKey: u.keys.publicKey,
    keyPackage: kps[i]!.keyPackage,
  })),
  Date.now(),
  cs,
  accept,
)
const group = filled.state
const member = (await joinFromWelcome(filled.welcome!, kps[0]!.keyPackage, kps[0]!.privateKeyPackage, cs, accept)).state
// One unprofiled round first: the JIT compiles the hot paths.
for (const profile of [false, true]) {
  const newcomer = user(`new${profile}`)
  const kp = await freshKeyPackage(newcomer, cs)
  const invitee = {
    identity: newcomer.identity,
    signaturePublicKey: newcomer.keys.publicKey,
    keyPackage: kp.keyPackage,
  }
  const step = <T>(name: string, op: () => Promise<T>) => (profile ? profiled(name, op) : op())
  const pending = await step("commit", () => addMembers(group, [invitee], Date.now(), cs, accept))
  await step("process", () => processIncoming(member, pending.commit, cs, accept))
  await step("join", () => joinFromWelcome(pending.welcome!, kp.keyPackage, kp.privateKeyPackage, cs, accept))
  const sent = await step("send", () => encryptText(group, "hello", cs))
  await step("receive", () => processIncoming(member, sent.message, cs, accept))
  const bytes = await step("save", async () => serializeState(member))
  await step("load", async () => deserializeState(bytes))
}
session.disconnect()
