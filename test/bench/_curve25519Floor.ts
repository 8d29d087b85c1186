// The least time an add-99 Commit and its processing could take on this machine: the Curve25519 work ts-mls asks of
// the provider for them (counted, not assumed) at the rate libsodium does it with every core busy. The rest of each
// step (decoding, the tree, hashes, the collector) runs on the same cores and only adds to it, so a target under this
// floor cannot be met by any change above the Curve25519 arithmetic (crypto.ts prints it beside the targets).
import { availableParallelism } from "node:os"
import { Worker } from "node:worker_threads"
import type { CiphersuiteImpl } from "ts-mls"
import { loop, workerTag } from "./_curve25519Loop.js"

/** The provider calls of one step that are Curve25519 arithmetic. */
export interface Curve25519Work {
  verifies: number
  /** HPKE seals: each draws an ephemeral X25519 key pair and does one DH. */
  seals: number
}

/** `cs` with its signature checks and HPKE seals counted into `count`, for one step run through it. */
export function counting(cs: CiphersuiteImpl, count: Curve25519Work): CiphersuiteImpl {
  return {
    ...cs,
    signature: {
      ...cs.signature,
      verify: (...args) => {
        count.verifies++
        return cs.signature.verify(...args)
      },
    },
    hpke: {
      ...cs.hpke,
      seal: (...args) => {
        count.seals++
        return cs.hpke.seal(...args)
      },
    },
  }
}

type Kind = "verify" | "encap"

/** Operations per second on one thread alone and on every core at once (`threads` of them). */
export type Curve25519Rates = Record<Kind, { oneThread: number; allCores: number }> & { threads: number }

const loopMs = 400

/** The loop on this thread and on `threads - 1` workers at the same time; operations per second in all. */
async function allCores(kind: Kind, threads: number): Promise<number> {
  const workers = Array.from(
    { length: threads - 1 },
    () => new Worker(new URL("./_curve25519Loop.js", import.meta.url), { workerData: { tag: workerTag, kind } }),
  )
  try {
    await Promise.all(workers.map((w) => new Promise((resolve) => w.once("message", resolve))))
    const counts = workers.map((w) => new Promise<number>((resolve) => w.once("message", resolve)))
    for (const w of workers) w.postMessage(loopMs)
    const own = loop(kind, loopMs)
    const theirs = await Promise.all(counts)
    return ((own + theirs.reduce((a, b) => a + b, 0)) * 1000) / loopMs
  } finally {
    await Promise.all(workers.map((w) => w.terminate()))
  }
}

export async function curve25519Rates(): Promise<Curve25519Rates> {
  const threads = availableParallelism()
  const rate = async (kind: Kind) => ({
    oneThread: (loop(kind, loopMs) * 1000) / loopMs,
    allCores: await allCores(kind, threads),
  })
  return { verify: await rate("verify"), encap: await rate("encap"), threads }
}

/** Milliseconds that `work` takes with every core doing it and nothing else. */
export function floorMs(work: Curve25519Work, rates: Curve25519Rates): number {
  return (work.verifies / rates.verify.allCores + work.seals / rates.encap.allCores) * 1000
}
