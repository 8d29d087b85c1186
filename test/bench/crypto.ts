// `npm run bench -- crypto`: ts-mls with its stock (WebCrypto) provider vs ours (node:crypto + libsodium), suite 1.
// Each figure is the median of 5 repeats (for Commits, of the median of 5 Commits each) after an untimed warm-up
// Commit. The repeats of the two providers alternate, and so does which of them goes first in a repeat, so that both
// see the same spells of this shared machine being slow or fast and neither always runs on a warmer process. Ratio is
// the native speed-up, higher is better for both kinds of figure. The OpenMLS column is not measured here: it is a
// table of reference constants (see `openMlsReference`).
import {
  createApplicationMessage,
  createCommit,
  createGroup,
  defaultCapabilities,
  defaultCryptoProvider,
  defaultLifetime,
  emptyPskIndex,
  generateKeyPackage,
  generateKeyPackageWithKey,
  getCiphersuiteFromName,
  joinGroup,
  processPrivateMessage,
} from "ts-mls"
import type { CiphersuiteImpl, ClientState, CryptoProvider, KeyPackage, PrivateKeyPackage } from "ts-mls"
import { defaultSuite, nodeCryptoProvider } from "../../crypto/index.js"
import { median, report } from "./report.js"

const metrics = ["keypackages_per_s", "encrypt_per_s", "decrypt_per_s", "commit_add99_ms", "process_add99_ms"] as const
type Metric = (typeof metrics)[number]
type Figures = Record<Metric, number>

/**
 * Reference constants, not measured by this benchmark: OpenMLS through Wire's `@wireapp/core-crypto` 10.3 native
 * build (in-memory keystore), ciphersuite 1, on this project's build machine, from the project's toolchain notes
 * ("Reference points from another implementation"). They were the targets of issue 5.
 */
const openMlsReference: Figures = {
  keypackages_per_s: 3600,
  encrypt_per_s: 2900,
  decrypt_per_s: 3300,
  commit_add99_ms: 32,
  process_add99_ms: 17.5,
}
const repeats = 5
const commitTrials = 5
const minSeconds = 0.5
const utf8 = (s: string) => new TextEncoder().encode(s)
const credential = (name: string) => ({ credentialType: "basic" as const, identity: utf8(name) })

/** Runs `op` one at a time until at least `minSeconds` have passed; returns operations per second. */
async function rate(op: (i: number) => Promise<void>): Promise<number> {
  const start = performance.now()
  let n = 0
  while (performance.now() - start < minSeconds * 1000) await op(n++)
  return n / ((performance.now() - start) / 1000)
}

async function timed(op: () => Promise<void>): Promise<number> {
  const start = performance.now()
  await op()
  return performance.now() - start
}

function keyPackage(name: string, cs: CiphersuiteImpl) {
  return generateKeyPackage(credential(name), defaultCapabilities(), defaultLifetime, [], cs)
}

function addProposals(kps: { publicPackage: KeyPackage }[]) {
  return kps.map((kp) => ({ proposalType: "add" as const, add: { keyPackage: kp.publicPackage } }))
}

/** Alice and Bob in one group, each with their own state. */
async function pair(cs: CiphersuiteImpl): Promise<{ alice: ClientState; bob: ClientState }> {
  const a = await keyPackage("alice", cs)
  const b = await keyPackage("bob", cs)
  const alice0 = await createGroup(utf8("bench"), a.publicPackage, a.privatePackage, [], cs)
  const added = await createCommit(
    { state: alice0, cipherSuite: cs },
    { extraProposals: addProposals([b]), ratchetTreeExtension: true },
  )
  if (added.welcome === undefined) throw new Error("no Welcome")
  const bob = await joinGroup(added.welcome, b.publicPackage, b.privatePackage, emptyPskIndex, cs)
  return { alice: added.newState, bob }
}

async function measure(cs: CiphersuiteImpl): Promise<Figures> {
  const signatureKeys = await cs.signature.keygen()
  const keypackages_per_s = await rate(async (i) => {
    await generateKeyPackageWithKey(credential(`m${i}`), defaultCapabilities(), defaultLifetime, [], signatureKeys, cs)
  })
  const { encrypt_per_s, decrypt_per_s } = await messages(cs)

  // Single Commits are at the mercy of GC pauses, so each repeat takes the median of a few.
  const commits = []
  for (let i = 0; i < commitTrials; i++) commits.push(await addNinetyNine(cs))
  const commit_add99_ms = median(commits.map((c) => c.commitMs))
  const process_add99_ms = median(commits.map((c) => c.processMs))

  return { keypackages_per_s, encrypt_per_s, decrypt_per_s, commit_add99_ms, process_add99_ms }
}

/**
 * Alice encrypts as many messages as she can in `minSeconds`, then Bob decrypts them all. In a function of its own so
 * that the thousands of messages are garbage before the Commits are timed.
 */
async function messages(cs: CiphersuiteImpl): Promise<{ encrypt_per_s: number; decrypt_per_s: number }> {
  let { alice, bob } = await pair(cs)
  const body = new Uint8Array(100).fill(0x61)
  const sent: Awaited<ReturnType<typeof createApplicationMessage>>["privateMessage"][] = []
  const encrypt_per_s = await rate(async () => {
    const r = await createApplicationMessage(alice, body, cs)
    alice = r.newState
    sent.push(r.privateMessage)
  })
  // Bob reads every message Alice wrote, in order.
  const decrypt_ms = await timed(async () => {
    for (const m of sent) {
      const r = await processPrivateMessage(bob, m, emptyPskIndex, cs)
      if (r.kind !== "applicationMessage") throw new Error("expected an application message")
      bob = r.newState
    }
  })
  return { encrypt_per_s, decrypt_per_s: sent.length / (decrypt_ms / 1000) }
}

/** A fresh pair, then one Commit adding 99 members, which Bob processes. */
async function addNinetyNine(cs: CiphersuiteImpl): Promise<{ commitMs: number; processMs: number }> {
  const group = await pair(cs)
  const joiners: { publicPackage: KeyPackage; privatePackage: PrivateKeyPackage }[] = []
  for (let i = 0; i < 99; i++) joiners.push(await keyPackage(`joiner${i}`, cs))
  let commit: Awaited<ReturnType<typeof createCommit>> | undefined
  const commitMs = await timed(async () => {
    commit = await createCommit(
      { state: group.alice, cipherSuite: cs },
      { extraProposals: addProposals(joiners), ratchetTreeExtension: true },
    )
  })
  if (commit === undefined || commit.commit.wireformat !== "mls_private_message") throw new Error("no private commit")
  const { privateMessage } = commit.commit
  const epoch = commit.newState.groupContext.epoch
  const processMs = await timed(async () => {
    const r = await processPrivateMessage(group.bob, privateMessage, emptyPskIndex, cs)
    if (r.newState.groupContext.epoch !== epoch) throw new Error("epochs differ")
  })
  return { commitMs, processMs }
}

/** Medians over alternating repeats of each provider. */
async function run(providers: readonly CryptoProvider[]): Promise<Figures[]> {
  const suites = await Promise.all(providers.map((p) => p.getCiphersuiteImpl(getCiphersuiteFromName(defaultSuite))))
  // Warm-up, untimed: compiles the hot paths and starts what a provider starts on first use (our worker thread).
  for (const cs of suites) await addNinetyNine(cs)
  const samples: Figures[][] = suites.map(() => [])
  for (let i = 0; i < repeats; i++) {
    // Every other repeat the other provider goes first.
    const order = i % 2 === 0 ? [...suites.keys()] : [...suites.keys()].reverse()
    for (const j of order) samples[j]!.push(await measure(suites[j]!))
  }
  return samples.map((s) => Object.fromEntries(metrics.map((m) => [m, median(s.map((x) => x[m]))])) as Figures)
}

export default async function (): Promise<void> {
  const [stock, native] = (await run([defaultCryptoProvider, nodeCryptoProvider])) as [Figures, Figures]
  const ratio = Object.fromEntries(
    metrics.map((m) => [m, m.endsWith("_ms") ? stock[m] / native[m] : native[m] / stock[m]]),
  ) as Figures
  const rows = metrics.map((m) => ({
    metric: m,
    stock: stock[m],
    native: native[m],
    "speed-up": ratio[m],
    "openmls (reference)": openMlsReference[m],
    "meets openmls": (m.endsWith("_ms") ? native[m] <= openMlsReference[m] : native[m] >= openMlsReference[m])
      ? "yes"
      : "no",
  }))
  report("crypto", rows, {
    stock,
    native,
    ratio,
    openmlsReference: {
      source: "constants: core-crypto 10.3 native, in-memory keystore, suite 1",
      ...openMlsReference,
    },
  })
}
