// Curve25519 jobs shared between the calling thread and one worker thread (see parallel.ts). Plain JavaScript
// because worker threads do not inherit tsx's loader; types are in batchJobs.d.ts.
//
// A batch lives in one SharedArrayBuffer:
//   Int32 header[6]   next item to claim, items done, kind, count, data offset, output offset
//   Int32 status[n]   0 pending, 1 ok (valid signature / DH done), 2 failed (invalid signature / all-zero DH)
//   Int32 offsets[n+1] where each item's input starts in the data area (item i is data[offsets[i], offsets[i+1]))
//   data              verify: public key (32) | signature (64) | message; dh: the recipient's public key (32)
//   output            dh only: the ephemeral public key (32) | the shared secret (32) per item
// Both threads claim items with one atomic counter, so whichever is free takes the next one and neither waits.
import { Buffer } from "node:buffer"
import { setImmediate } from "node:timers"
import sodium from "sodium-native"
import { isMainThread, parentPort, workerData } from "node:worker_threads"

export const kinds = { ed25519Verify: 1, x25519Ephemeral: 2 }
export const status = { pending: 0, ok: 1, failed: 2 }
export const workerTag = "mls-chat-curve25519-jobs"
export const dhOutputSize = 64
const headerInts = 6

/** Typed views of a batch buffer. */
export function views(sab) {
  const header = new Int32Array(sab, 0, headerInts)
  const count = header[3]
  return {
    header,
    count,
    status: new Int32Array(sab, headerInts * 4, count),
    offsets: new Int32Array(sab, (headerInts + count) * 4, count + 1),
    data: new Uint8Array(sab, header[4], header[5] - header[4]),
    output: new Uint8Array(sab, header[5]),
  }
}

/** A batch buffer for `count` items whose inputs take `dataSize` bytes in all; the caller fills offsets and data. */
export function allocate(kind, count, dataSize) {
  const dataStart = (headerInts + count + count + 1) * 4
  const outputStart = dataStart + dataSize + ((8 - (dataSize % 8)) % 8)
  const outputSize = kind === kinds.x25519Ephemeral ? count * dhOutputSize : 0
  const sab = new SharedArrayBuffer(outputStart + outputSize)
  new Int32Array(sab, 0, headerInts).set([0, 0, kind, count, dataStart, outputStart])
  return sab
}

/** Runs items of the batch until none is left to claim; returns how many this thread ran. */
export function runItems(sab) {
  const v = views(sab)
  const kind = v.header[2]
  let ran = 0
  for (;;) {
    const i = Atomics.add(v.header, 0, 1)
    if (i >= v.count) return ran
    const ok = runItem(kind, v, i)
    Atomics.store(v.status, i, ok ? status.ok : status.failed)
    if (Atomics.add(v.header, 1, 1) + 1 === v.count) Atomics.notify(v.header, 1)
    ran++
  }
}

/** Runs every item still pending, whoever claimed it: the caller's way out when the worker stopped answering. */
export function finishPending(sab) {
  const v = views(sab)
  for (let i = 0; i < v.count; i++)
    if (Atomics.load(v.status, i) === status.pending)
      Atomics.store(v.status, i, runItem(v.header[2], v, i) ? status.ok : status.failed)
}

// libsodium takes ordinary memory, so each thread copies an item out of the shared buffer into its own scratch.
let scratch = Buffer.alloc(4096)
const publicKey = Buffer.alloc(32)
const signature = Buffer.alloc(64)
const ephemeralSecret = Buffer.alloc(32)
const ephemeralPublic = Buffer.alloc(32)
const shared = Buffer.alloc(32)

function runItem(kind, v, i) {
  const item = v.data.subarray(v.offsets[i], v.offsets[i + 1])
  if (kind === kinds.ed25519Verify) {
    publicKey.set(item.subarray(0, 32))
    signature.set(item.subarray(32, 96))
    const length = item.length - 96
    if (scratch.length < length) scratch = Buffer.alloc(length)
    scratch.set(item.subarray(96))
    return sodium.crypto_sign_verify_detached(signature, scratch.subarray(0, length), publicKey)
  }
  // x25519Ephemeral: a fresh ephemeral key pair and its DH with the recipient's key (RFC 9180 Encap).
  publicKey.set(item)
  sodium.randombytes_buf(ephemeralSecret)
  sodium.crypto_scalarmult_base(ephemeralPublic, ephemeralSecret)
  let ok = true
  try {
    sodium.crypto_scalarmult(shared, ephemeralSecret, publicKey)
  } catch {
    ok = false // libsodium refuses an all-zero shared secret, as RFC 9180 §7.1.4 requires
  }
  sodium.sodium_memzero(ephemeralSecret)
  if (ok) {
    const out = v.output.subarray(i * dhOutputSize, (i + 1) * dhOutputSize)
    out.set(ephemeralPublic, 0)
    out.set(shared, 32)
  }
  sodium.sodium_memzero(shared)
  return ok
}

// Spare X25519 key pairs, drawn by the worker ahead of need for the calling thread (parallel.ts, takeSpareX25519).
// One SharedArrayBuffer, one producer (the worker) and one consumer (the calling thread):
//   Int32 header[4]   pairs produced, pairs taken, capacity, unused (monotonic counters; slot = counter % capacity)
//   slots             capacity × (private key (32) | public key (32)); a taken slot is zeroed by the taker
export const spareHeaderInts = 4
export const spareSlotSize = 64

/**
 * The worker's side: fills every free slot, then sleeps until the calling thread has taken some (Atomics.waitAsync,
 * so that batches posted meanwhile still run) and fills again. A slot is written before the produced count that
 * publishes it.
 */
function fillSpares(sab) {
  const header = new Int32Array(sab, 0, spareHeaderInts)
  const capacity = header[2]
  const slots = new Uint8Array(sab, spareHeaderInts * 4)
  const fill = () => {
    const taken = Atomics.load(header, 1)
    for (let produced = header[0]; produced - taken < capacity; produced++) {
      sodium.randombytes_buf(ephemeralSecret)
      sodium.crypto_scalarmult_base(ephemeralPublic, ephemeralSecret)
      const at = (produced % capacity) * spareSlotSize
      slots.set(ephemeralSecret, at)
      slots.set(ephemeralPublic, at + 32)
      sodium.sodium_memzero(ephemeralSecret)
      Atomics.store(header, 0, produced + 1)
    }
    const wait = Atomics.waitAsync(header, 1, taken)
    if (wait.async) void wait.value.then(fill)
    else setImmediate(fill) // some were taken while this call filled
  }
  fill()
}

if (!isMainThread && workerData === workerTag)
  parentPort.on("message", (m) => (m instanceof SharedArrayBuffer ? runItems(m) : fillSpares(m.spares)))
