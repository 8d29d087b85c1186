// EdDSA (RFC 8032) for ts-mls on node:crypto, with the key objects cached as described in README.md.
import { createPrivateKey, sign, timingSafeEqual, verify } from "node:crypto"
import type { KeyObject } from "node:crypto"
import type { Signature } from "ts-mls"
import { concat, startsWith, toBase64Url, toBytes } from "./bytes.js"
import { LruCache } from "./lru.js"
import { generateRaw, importPrivate, importPublic, keySizes } from "./okp.js"
import type { SignatureCurve } from "./suites.js"

/** PKCS#8 prefixes of a bare private key (RFC 8410), the form the stock provider's Ed25519 keygen returns. */
const pkcs8Prefixes: Record<SignatureCurve, Uint8Array> = {
  Ed25519: Buffer.from("302e020100300506032b657004220420", "hex"),
  Ed448: Buffer.from("3047020100300506032b6571043b0439", "hex"),
}

/**
 * Public verification keys by curve and key bytes, saving the JWK import (~5 µs of a ~70 µs check) when the same
 * member signs again. Public keys are not secret; the bound keeps memory flat on a server that sees many members.
 */
const verifyKeys = new LruCache<string, KeyObject>(4096)

/**
 * Signing KeyObjects keyed by the identity of the caller's key array (ts-mls passes the same
 * `state.signaturePrivateKey` / `signKey` object on every call). A WeakMap entry lives exactly as long as the caller
 * keeps that array, so no secret outlives the caller's own copy; the stored copy of the bytes is compared before use
 * so that a caller overwriting its array (e.g. ts-mls's `zeroOutUint8Array`) gets the new key, never a stale one.
 */
const signingKeys = new WeakMap<Uint8Array, { bytes: Uint8Array; key: KeyObject }>()

export function makeSignature(curve: SignatureCurve): Signature {
  return {
    async sign(signKey, message) {
      return toBytes(sign(null, message, signingKey(curve, signKey)))
    },
    async verify(publicKey, message, signature) {
      const key = verifyKey(curve, publicKey)
      return key !== undefined && verifySoon(key, message, signature)
    },
    async keygen() {
      const { privateKey, publicKey } = generateRaw(curve)
      // Same private key encoding as the stock provider, so keys and encoded states move freely between the two.
      const signKey = curve === "Ed25519" ? concat([pkcs8Prefixes.Ed25519, privateKey]) : privateKey
      return { signKey, publicKey }
    },
  }
}

interface Verification {
  key: KeyObject
  message: Uint8Array
  signature: Uint8Array
  resolve: (valid: boolean) => void
}

let queued: Verification[] = []

/**
 * Batches at least this large keep fewer checks on this thread: ts-mls validates a Commit's KeyPackages concurrently,
 * and while the pool checks them this thread has the rest of the Commit to do (decoding, encoding, tree hashes).
 */
const poolBatch = 16

/**
 * Verification is the costliest step of processing a Commit that adds many members (two signatures per KeyPackage),
 * and ts-mls starts those checks concurrently. Verifications requested in one turn of the event loop are therefore
 * collected and shared between this thread and libuv's thread pool, so both cores work; a lone one runs here.
 */
function verifySoon(key: KeyObject, message: Uint8Array, signature: Uint8Array): Promise<boolean> {
  return new Promise((resolve) => {
    if (queued.push({ key, message, signature, resolve }) === 1) setImmediate(verifyQueued)
  })
}

function verifyQueued(): void {
  const batch = queued
  queued = []
  // On this 2-core machine, 99 Ed25519 checks take ~7 ms here alone and ~4.2 ms with two in three on the pool. A
  // large batch (a Commit's Adds) does better with one in eight here, leaving this thread time for the rest of the
  // Commit: measured against one in three and against none, for both creating and processing an add-99 Commit.
  const large = batch.length >= poolBatch
  for (const [i, v] of batch.entries()) {
    try {
      if (large ? i % 8 === 7 : i % 3 === 0) v.resolve(verify(null, v.message, v.key, v.signature))
      else verify(null, v.message, v.key, v.signature, (err, valid) => v.resolve(err === null && valid))
    } catch {
      v.resolve(false)
    }
  }
}

function signingKey(curve: SignatureCurve, signKey: Uint8Array): KeyObject {
  const hit = signingKeys.get(signKey)
  if (hit !== undefined && hit.bytes.length === signKey.length && timingSafeEqual(hit.bytes, signKey)) return hit.key
  const key = importSigningKey(curve, signKey)
  signingKeys.set(signKey, { bytes: signKey.slice(), key })
  return key
}

/** Raw keys (the test vectors' form) and bare PKCS#8 go the fast JWK path; any other PKCS#8 through DER. */
function importSigningKey(curve: SignatureCurve, signKey: Uint8Array): KeyObject {
  const size = keySizes[curve]
  if (signKey.length === size) return importPrivate(curve, signKey)
  const prefix = pkcs8Prefixes[curve]
  if (signKey.length === prefix.length + size && startsWith(signKey, prefix))
    return importPrivate(curve, signKey.subarray(prefix.length))
  return createPrivateKey({ key: Buffer.from(signKey), format: "der", type: "pkcs8" })
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
