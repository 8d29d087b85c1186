// EdDSA (RFC 8032) for ts-mls: Ed25519 on libsodium (curve25519.ts; checks batched over two threads by parallel.ts)
// with OpenSSL's word on every rejection, and on OpenSSL for long messages; Ed448 on OpenSSL. Key caches as described
// in README.md.
import { createPrivateKey, sign, timingSafeEqual, verify } from "node:crypto"
import type { JsonWebKey, KeyObject } from "node:crypto"
import type { Signature } from "ts-mls"
import { CryptoError } from "ts-mls/mlsError.js"
import { fromBase64Url, toBase64Url } from "../rpc-schema/common.js"
import { concat, startsWith, toBytes } from "./bytes.js"
import { ed25519SecretKey, ed25519Sign, ed25519Verify } from "./curve25519.js"
import { LruCache } from "./lru.js"
import { generateRaw, importPrivate, importPublic, keySizes } from "./okp.js"
import { randomBytes } from "./rng.js"
import { ed25519Batch, ed25519Verdicts, finishBatches, startBatch } from "./parallel.js"
import type { VerifyJob } from "./parallel.js"
import type { SignatureCurve } from "./suites.js"

/** PKCS#8 prefixes of a bare private key (RFC 8410), the form the stock provider's Ed25519 keygen returns. */
const pkcs8Prefixes: Record<SignatureCurve, Uint8Array> = {
  Ed25519: Buffer.from("302e020100300506032b657004220420", "hex"),
  Ed448: Buffer.from("3047020100300506032b6571043b0439", "hex"),
}

/**
 * OpenSSL's public verification keys by curve and key bytes, saving the JWK import when the same member signs again.
 * Public keys are not secret; the bound keeps memory flat on a server that sees many members.
 */
const verifyKeys = new LruCache<string, KeyObject>(4096)

/**
 * A signing key ready for use: libsodium's 64-byte secret key for Ed25519 (and OpenSSL's, made for the first long
 * message), an OpenSSL KeyObject for Ed448.
 */
type SigningKey = { curve: "Ed25519"; secretKey: Buffer; openSsl?: KeyObject } | { curve: "Ed448"; key: KeyObject }

/**
 * Message lengths from which OpenSSL is the faster Ed25519: it costs more per call than libsodium (sign ~28 vs ~16 µs,
 * verify ~78 vs ~45) but hashes faster (SHA-512 ~1.5 vs ~2.5 ns a byte, twice per signature). Measured here: signing
 * 8 kB takes both 44 µs, 220 kB (a GroupInfo with the tree of a 1,000-member group) 0.67 against 1.1 ms; verifying
 * 64 kB 143 against 158 µs. The signatures are the same bytes (Ed25519 is deterministic), and OpenSSL's verdict is
 * the one `settle` defers to anyway.
 */
const openSslSignFrom = 8 * 1024
const openSslVerifyFrom = 64 * 1024

/**
 * Signing keys keyed by the identity of the caller's key array (ts-mls passes the same `state.signaturePrivateKey` /
 * `signKey` object on every call). A WeakMap entry lives exactly as long as the caller keeps that array, so no secret
 * outlives the caller's own copy; the stored copy of the bytes is compared before use so that a caller overwriting
 * its array (e.g. ts-mls's `zeroOutUint8Array`) gets the new key, never a stale one.
 */
const signingKeys = new WeakMap<Uint8Array, { bytes: Uint8Array; key: SigningKey }>()

export function makeSignature(curve: SignatureCurve): Signature {
  return {
    async sign(signKey, message) {
      const key = signingKey(curve, signKey)
      if (key.curve === "Ed448") return toBytes(sign(null, message, key.key))
      if (message.length < openSslSignFrom) return ed25519Sign(key.secretKey, message)
      key.openSsl ??= importPrivate(curve, key.secretKey.subarray(0, 32))
      return toBytes(sign(null, message, key.openSsl))
    },
    async verify(publicKey, message, signature) {
      if (curve === "Ed448" || message.length >= openSslVerifyFrom)
        return openSslVerifies(curve, { publicKey, message, signature })
      if (publicKey.length !== keySizes.Ed25519 || signature.length !== 64) return false
      return verifySoon({ publicKey, message, signature })
    },
    async keygen() {
      // Same private key encoding as the stock provider, so keys and encoded states move freely between the two.
      if (curve === "Ed448") {
        const { privateKey, publicKey } = generateRaw(curve)
        return { signKey: privateKey, publicKey }
      }
      const seed = randomBytes(32)
      return { signKey: concat([pkcs8Prefixes.Ed25519, seed]), publicKey: ed25519SecretKey(seed).publicKey }
    },
  }
}

/**
 * The stock provider's verdict, OpenSSL's. libsodium rejects some signatures OpenSSL accepts: those by a public key
 * or with an R of small order, or with a non-canonical key encoding. No honest key makes one, but every member of a
 * group must reach the same verdict on a Commit, whatever provider it runs. libsodium checks the same equation as
 * OpenSSL plus those extra conditions, so what it accepts OpenSSL accepts; what it rejects is asked again here. The
 * verdict is OpenSSL's either way, and honest signatures (the common case) take only the fast path.
 */
function openSslVerifies(curve: SignatureCurve, job: VerifyJob): boolean {
  const key = verifyKey(curve, job.publicKey)
  try {
    return key !== undefined && verify(null, job.message, key, job.signature)
  } catch {
    return false
  }
}

interface QueuedCheck {
  job: VerifyJob
  resolve: (valid: boolean) => void
}

/** Checks requested since the last chunk was cut. */
let queued: QueuedCheck[] = []
/** Chunks handed to the worker already, finished together at the end of the turn. */
let started: { sab: SharedArrayBuffer; checks: QueuedCheck[] }[] = []

/**
 * Checks requested while ts-mls is still requesting more are cut into chunks of this many and handed to the worker at
 * once, so that it works on them while this thread goes on: processing a Commit that adds 99 members, the patched
 * ts-mls computes the new epoch while the 198 checks of its KeyPackages run.
 */
const chunkSize = 32

/** When this thread last answered or queued a check (performance.now(), ms). */
let lastCheckAt = Number.NEGATIVE_INFINITY

/**
 * A check requested this long after the previous one, with none waiting, is taken to be alone. ts-mls requests a
 * Commit's checks a few µs apart (p50 2–7 µs here), while a run of messages asks one per message, ~40 µs or more
 * after the previous check ended.
 */
const aloneAfterMs = 0.02

/**
 * ts-mls starts the checks of a Commit's KeyPackages concurrently (with the ts-mls patch, both signatures of each at
 * once: 198 for a Commit adding 99 members). A check that comes alone (a message's signature, say) runs at once on
 * this thread, without a trip through the shared buffer and the next turn of the event loop (~+20 % decrypts per
 * second in alternating runs). The others are collected: each full chunk goes to the worker as soon as it is
 * cut (parallel.ts), and at the end of the turn this thread cuts the rest and finishes every chunk together with the
 * worker. The first check of a batch runs alone; the next comes within aloneAfterMs and starts the collection.
 */
function verifySoon(job: VerifyJob): Promise<boolean> {
  if (queued.length === 0 && started.length === 0 && performance.now() - lastCheckAt > aloneAfterMs) {
    const valid = ed25519Verify(job.publicKey, job.message, job.signature) || openSslVerifies("Ed25519", job)
    lastCheckAt = performance.now()
    return Promise.resolve(valid)
  }
  lastCheckAt = performance.now()
  return new Promise((resolve) => {
    if (queued.push({ job, resolve }) === 1 && started.length === 0) setImmediate(verifyQueued)
    if (queued.length === chunkSize) startChunk()
  })
}

function startChunk(): void {
  const checks = queued
  queued = []
  try {
    const sab = ed25519Batch(checks.map((q) => q.job))
    startBatch(sab)
    started.push({ sab, checks })
  } catch {
    settle(checks, []) // then OpenSSL checks every signature of the chunk
  }
}

function verifyQueued(): void {
  if (queued.length > 0) startChunk()
  const chunks = started
  started = []
  let finished: SharedArrayBuffer[] | undefined
  try {
    finished = finishBatches(chunks.map((c) => c.sab))
  } catch {
    finished = undefined // then OpenSSL checks every signature
  }
  chunks.forEach(({ checks }, i) => settle(checks, finished === undefined ? [] : ed25519Verdicts(finished[i]!)))
}

/** libsodium's verdicts, with OpenSSL's word on each signature libsodium refused (or never checked). */
function settle(checks: QueuedCheck[], verdicts: boolean[]): void {
  for (const [i, q] of checks.entries()) q.resolve(verdicts[i] === true || openSslVerifies("Ed25519", q.job))
}

function signingKey(curve: SignatureCurve, signKey: Uint8Array): SigningKey {
  const hit = signingKeys.get(signKey)
  if (hit !== undefined && hit.bytes.length === signKey.length && timingSafeEqual(hit.bytes, signKey)) return hit.key
  const raw = rawPrivateKey(curve, signKey)
  const key: SigningKey =
    curve === "Ed25519"
      ? { curve, secretKey: ed25519SecretKey(raw).secretKey }
      : { curve, key: importPrivate(curve, raw) }
  signingKeys.set(signKey, { bytes: signKey.slice(), key })
  return key
}

/** Raw keys (the test vectors' form) and bare PKCS#8 are read directly; any other PKCS#8 through OpenSSL's decoder. */
function rawPrivateKey(curve: SignatureCurve, signKey: Uint8Array): Uint8Array {
  const size = keySizes[curve]
  if (signKey.length === size) return signKey
  const prefix = pkcs8Prefixes[curve]
  if (signKey.length === prefix.length + size && startsWith(signKey, prefix)) return signKey.subarray(prefix.length)
  const jwk: JsonWebKey = createPrivateKey({ key: Buffer.from(signKey), format: "der", type: "pkcs8" }).export({
    format: "jwk",
  })
  if (jwk.crv !== curve || jwk.d === undefined) throw new CryptoError(`not an ${curve} private key`)
  return fromBase64Url(jwk.d)
}

/** undefined for a malformed key: verification then fails rather than throws, and ts-mls reports a typed error. */
function verifyKey(curve: SignatureCurve, publicKey: Uint8Array): KeyObject | undefined {
  if (publicKey.length !== keySizes[curve]) return undefined
  const id = curve + toBase64Url(publicKey)
  let key = verifyKeys.get(id)
  if (key === undefined) {
    try {
      key = importPublic(curve, publicKey)
    } catch {
      return undefined
    }
    verifyKeys.set(id, key)
  }
  return key
}
