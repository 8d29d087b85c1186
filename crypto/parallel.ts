// Batches of Curve25519 jobs (Ed25519 checks, X25519 ephemeral DHs) run by this thread and one worker thread
// together, both claiming items through one atomic counter (batchJobs.js). A Commit adding 99 members asks for 198 signature
// checks at once and its Welcome for 99 seals; on a 2-core machine two threads halve that wall time. The worker also
// keeps spare X25519 key pairs drawn ahead (takeSpareX25519).
import { Worker } from "node:worker_threads"
import {
  allocate,
  dhOutputSize,
  finishPending,
  kinds,
  runItems,
  spareHeaderInts,
  spareSlotSize,
  status,
  views,
  workerTag,
} from "./batchJobs.js"

/** Smaller batches run on this thread alone: waking the worker (~0.1 ms) would cost about what it saves. */
export const parallelBatch = 16

/** How long this thread waits for the worker's last items before it runs them itself and replaces the worker. */
const stallMs = 1000

let helper: Worker | undefined
/** Set when a worker failed (e.g. could not load libsodium): from then on this thread runs every batch alone. */
let workerFailed = false

/**
 * The worker, started on first use (~30 ms) and unref'd so that it never keeps a process alive. Until it is up, this
 * thread simply takes every item itself.
 */
function worker(): Worker {
  if (helper !== undefined) return helper
  const w = new Worker(new URL("./batchJobs.js", import.meta.url), { workerData: workerTag })
  const forget = () => {
    if (helper === w) helper = undefined
  }
  // Items a failed worker claimed are finished here (see finishBatch); a worker that fails once would fail again.
  w.on("error", () => {
    workerFailed = true
    forget()
  })
  w.on("exit", forget)
  w.unref()
  return (helper = w)
}

/** Hands a batch to the worker, which starts on it while this thread goes on; `finishBatch` completes it. */
export function startBatch(sab: SharedArrayBuffer): void {
  if (views(sab).count >= parallelBatch && !workerFailed) worker().postMessage(sab)
}

/**
 * Runs what is left of a started batch on this thread and completes it; returns the buffer holding the results: the
 * one given, or after a stall a copy in which this thread finished the items the worker had claimed.
 *
 * Signature checks the worker has claimed but not finished are run again here rather than waited for. The OS often
 * deschedules the worker for milliseconds (V8's own background threads share the two cores), and a check is a pure
 * function: both threads store the same verdict, so it does not matter which one lands. Ephemeral DHs draw a fresh
 * key, so for them this thread waits for the worker, and takes over after a stall.
 */
export function finishBatch(sab: SharedArrayBuffer, stallAfterMs = stallMs): SharedArrayBuffer {
  const v = views(sab)
  runItems(sab)
  if (v.header[2] === kinds.ed25519Verify) {
    finishPending(sab)
    return sab
  }
  const deadline = performance.now() + stallAfterMs
  for (let done = Atomics.load(v.header, 1); done < v.count; done = Atomics.load(v.header, 1)) {
    const left = deadline - performance.now()
    if (left <= 0 || Atomics.wait(v.header, 1, done, left) === "timed-out") return recoverStalled(sab)
  }
  return sab
}

/**
 * finishBatch for several started batches: this thread first takes every item left in any of them, so that it never
 * waits on one batch while another still has work.
 */
export function finishBatches(sabs: readonly SharedArrayBuffer[]): SharedArrayBuffer[] {
  for (const sab of sabs) runItems(sab)
  return sabs.map((sab) => finishBatch(sab))
}

/** startBatch and finishBatch at once. */
export function runBatch(sab: SharedArrayBuffer, stallAfterMs = stallMs): SharedArrayBuffer {
  startBatch(sab)
  return finishBatch(sab, stallAfterMs)
}

/**
 * The worker claimed items and did not finish them within stallMs (it died or hangs): it is let go, and the items it
 * left are run here in a copy of the batch, so that a late write by the old worker cannot mix with these results.
 */
function recoverStalled(sab: SharedArrayBuffer): SharedArrayBuffer {
  const stalled = helper
  helper = undefined
  void stalled?.terminate()
  const v = views(sab)
  // Atomic reads first: an item seen finished here has its output visible to the copy made after.
  const finished = Array.from({ length: v.count }, (_, i) => Atomics.load(v.status, i) !== status.pending)
  const copy = new SharedArrayBuffer(sab.byteLength)
  new Uint8Array(copy).set(new Uint8Array(sab))
  v.output.fill(0) // the caller wipes the copy's outputs; the abandoned buffer's go now
  const c = views(copy)
  finished.forEach((f, i) => {
    if (!f) c.status[i] = status.pending
  })
  finishPending(copy)
  return copy
}

export interface VerifyJob {
  publicKey: Uint8Array
  message: Uint8Array
  signature: Uint8Array
}

/** The verdicts of a finished Ed25519 batch, in job order. */
export function ed25519Verdicts(finished: SharedArrayBuffer): boolean[] {
  return Array.from(views(finished).status, (s) => s === status.ok)
}

export function ed25519Batch(jobs: readonly VerifyJob[]): SharedArrayBuffer {
  const sab = allocate(
    kinds.ed25519Verify,
    jobs.length,
    jobs.reduce((n, j) => n + 96 + j.message.length, 0),
  )
  const v = views(sab)
  let at = 0
  jobs.forEach((j, i) => {
    v.offsets[i] = at
    v.data.set(j.publicKey, at)
    v.data.set(j.signature, at + 32)
    v.data.set(j.message, at + 96)
    at += 96 + j.message.length
  })
  v.offsets[jobs.length] = at
  return sab
}

/**
 * RFC 9180 Encap's DH for each X25519 recipient key (32 bytes: the caller checks): a fresh ephemeral key pair per
 * recipient (its public half is `enc`) and its DH with the recipient's key, or undefined where that DH is all zero.
 */
export function x25519EphemeralAll(
  recipients: readonly Uint8Array[],
): ({ enc: Uint8Array; dh: Uint8Array } | undefined)[] {
  const sab = allocate(kinds.x25519Ephemeral, recipients.length, recipients.length * 32)
  const v = views(sab)
  recipients.forEach((r, i) => {
    v.offsets[i] = i * 32
    v.data.set(r, i * 32)
  })
  v.offsets[recipients.length] = recipients.length * 32
  const result = views(runBatch(sab))
  const out = recipients.map((_, i) => {
    if (result.status[i] !== status.ok) return undefined
    const o = result.output.subarray(i * dhOutputSize, (i + 1) * dhOutputSize)
    return { enc: o.slice(0, 32), dh: o.slice(32) }
  })
  result.output.fill(0) // the shared secrets leave shared memory as soon as they are copied out
  return out
}

/**
 * Spare X25519 key pairs: the worker keeps `spareCapacity` of them drawn ahead (batchJobs.js, fillSpares), so that a
 * KeyPackage, which needs two fresh key pairs (its init key and its leaf's encryption key, ~19 µs each), leaves that
 * work to the other core. Started by the first take; bound to the worker that fills them.
 */
const spareCapacity = 16
let spares: { worker: Worker; header: Int32Array; slots: Uint8Array } | undefined

/**
 * A fresh X25519 key pair the worker drew (libsodium's CSPRNG, as on this thread), or undefined when none is ready
 * (the caller draws its own). Each pair is handed out once: its slot is zeroed as it is copied out, before the worker
 * may reuse it.
 */
export function takeSpareX25519(): { privateKey: Uint8Array; publicKey: Uint8Array } | undefined {
  if (workerFailed) return undefined
  const w = worker()
  if (spares?.worker !== w) {
    const sab = new SharedArrayBuffer(spareHeaderInts * 4 + spareCapacity * spareSlotSize)
    const header = new Int32Array(sab, 0, spareHeaderInts)
    header[2] = spareCapacity
    const slots = new Uint8Array(sab, spareHeaderInts * 4)
    spares = { worker: w, header, slots }
    // A worker that exits (or is replaced after a stall) leaves its spares: wiped once it can no longer write them.
    w.once("exit", () => {
      slots.fill(0)
      if (spares?.worker === w) spares = undefined
    })
    w.postMessage({ spares: sab })
    return undefined
  }
  const { header, slots } = spares
  const taken = header[1]!
  const produced = Atomics.load(header, 0)
  if (produced === taken) return undefined
  const at = (taken % spareCapacity) * spareSlotSize
  const privateKey = slots.slice(at, at + 32)
  const publicKey = slots.slice(at + 32, at + spareSlotSize)
  slots.fill(0, at, at + spareSlotSize)
  Atomics.store(header, 1, taken + 1)
  // The worker sleeps while the slots are full; it is woken once half are taken, not for every one.
  if (produced - taken - 1 <= spareCapacity / 2) Atomics.notify(header, 1)
  return { privateKey, publicKey }
}

/** How many spare key pairs are ready now (for tests). */
export function spareX25519Ready(): number {
  return spares === undefined ? 0 : Atomics.load(spares.header, 0) - spares.header[1]!
}
