// One timed loop of libsodium's Ed25519 check or X25519 encap (a fresh ephemeral key pair and one DH), run by the
// calling thread and by workers at once (_curve25519Floor.ts). Plain JavaScript because worker threads do not inherit
// tsx's loader; types are in _curve25519Loop.d.ts.
import { Buffer } from "node:buffer"
import { performance } from "node:perf_hooks"
import { isMainThread, parentPort, workerData } from "node:worker_threads"
import sodium from "sodium-native"

export const workerTag = "mls-chat-curve25519-loop"
// A KeyPackageTBS is ~250 bytes; a check's cost hardly depends on the length at this size.
const messageBytes = 256

/** Runs `kind` ("verify" or "encap") for `ms` milliseconds after a short warm-up; returns how many it ran. */
export function loop(kind, ms) {
  const pk = Buffer.alloc(32)
  const sk = Buffer.alloc(64)
  const sig = Buffer.alloc(64)
  const msg = Buffer.alloc(messageBytes, 7)
  sodium.crypto_sign_keypair(pk, sk)
  sodium.crypto_sign_detached(sig, msg, sk)
  const ephemeralSecret = Buffer.alloc(32)
  const ephemeralPublic = Buffer.alloc(32)
  const peer = Buffer.alloc(32)
  const shared = Buffer.alloc(32)
  sodium.randombytes_buf(ephemeralSecret)
  sodium.crypto_scalarmult_base(peer, ephemeralSecret)
  const op =
    kind === "verify"
      ? () => {
          if (!sodium.crypto_sign_verify_detached(sig, msg, pk)) throw new Error("a valid signature was refused")
        }
      : () => {
          sodium.randombytes_buf(ephemeralSecret)
          sodium.crypto_scalarmult_base(ephemeralPublic, ephemeralSecret)
          sodium.crypto_scalarmult(shared, ephemeralSecret, peer)
        }
  for (let i = 0; i < 200; i++) op()
  const end = performance.now() + ms
  let n = 0
  while (performance.now() < end) {
    op()
    n++
  }
  return n
}

// A worker: says it is ready, then runs one loop of the length it is sent and answers its count.
if (!isMainThread && workerData?.tag === workerTag) {
  parentPort.once("message", (ms) => parentPort.postMessage(loop(workerData.kind, ms)))
  parentPort.postMessage("ready")
}
