/**
 * Server-side KeyPackage checks (RFC 9420 §10.1) before anything reaches the store: decoding
 * (bare or MLSMessage-wrapped, canonical, no trailing bytes), credential identity = the uploading
 * device's client id, leaf signature key = the device's bound MLS key (if one is bound yet: the
 * store binds the first accepted one, in its transaction), both signatures, init key ≠ encryption
 * key, a current lifetime of at most 90 days. The KeyPackageRef is computed here, over the exact
 * bytes stored.
 */
import { ciphersuites, type CiphersuiteImpl, type CiphersuiteName } from "ts-mls"
import { refhash } from "ts-mls/crypto/hash.js"
import { decodeKeyPackage, encodeKeyPackage, verifyKeyPackage, type KeyPackage } from "ts-mls/keyPackage.js"
import { verifyLeafNodeSignatureKeyPackage } from "ts-mls/leafNode.js"
import { decodeMlsMessage } from "ts-mls/message.js"
import { sameBytes } from "../../shared/bytes.js"
import { toBase64Url } from "../../rpc-schema/common.js"
import { keyPackageRejections, type KeyPackageRejection } from "../../rpc-schema/errors.js"
import { maxLifetimeMs } from "../../rpc-schema/server/http/keys.js"
import type { ValidKeyPackage } from "../store/types.js"

/** Clock skew tolerated on not_before. */
const notBeforeSkewMs = 5 * 60_000

export type Validation = { ok: true; kp: ValidKeyPackage } | { ok: false; reason: KeyPackageRejection; message: string }

const reject = (reason: KeyPackageRejection, detail?: string): Validation => ({
  ok: false,
  reason,
  message: detail ? `${keyPackageRejections[reason]}: ${detail}` : keyPackageRejections[reason],
})

/** Runs a ts-mls decoder over all of `bytes`; undefined on failure or trailing bytes (its decoders can throw). */
function decodeWhole<T>(decode: (b: Uint8Array, offset: number) => [T, number] | undefined, bytes: Uint8Array) {
  try {
    const r = decode(bytes, 0)
    return r && r[1] === bytes.length ? r[0] : undefined
  } catch {
    return undefined
  }
}

/** The bare KeyPackage in `bytes`, which may also be an MLSMessage wrapping one. */
function decodeEither(bytes: Uint8Array): { kp: KeyPackage; bare: Uint8Array } | undefined {
  const bare = decodeWhole(decodeKeyPackage, bytes)
  if (bare) return { kp: bare, bare: bytes }
  const wrapped = decodeWhole(decodeMlsMessage, bytes)
  if (wrapped?.wireformat === "mls_key_package") return { kp: wrapped.keyPackage, bare: bytes.subarray(4) }
  return undefined
}

/**
 * Whether `bare` is the one encoding of `kp` (RFC 9420 §2.1.2), so that everyone computes the same KeyPackageRef. The
 * patched ts-mls keeps a decoded value's bytes as its encoding, so encoding `kp` itself would give `bare` back whatever
 * it is: the comparison is with a fresh encoding of a copy.
 */
export function isCanonical(kp: KeyPackage, bare: Uint8Array): boolean {
  return sameBytes(encodeKeyPackage(structuredClone(kp)), bare)
}

/** The uploading device as the checks see it. */
export interface Uploader {
  /** The identity its credentials must carry. */
  clientId: string
  /** Also accepted as the identity: the bare handle, for the account's oldest device (daemons from before devices). */
  legacyHandle: string | undefined
  /** The MLS signature key bound to the device; null until its first accepted upload binds one. */
  mlsKey: Uint8Array | null
}

export async function validateKeyPackage(
  bytes: Uint8Array,
  uploader: Uploader,
  now: number,
  suite: (name: CiphersuiteName) => Promise<CiphersuiteImpl | undefined>,
): Promise<Validation> {
  const decoded = decodeEither(bytes)
  if (!decoded) return reject("malformed")
  const { kp, bare } = decoded
  if (!isCanonical(kp, bare)) return reject("malformed", "non-canonical encoding")
  if (kp.version !== "mls10") return reject("malformed", "protocol version is not mls10")
  const cs = await suite(kp.cipherSuite)
  if (!cs) return reject("unsupported_ciphersuite", kp.cipherSuite)

  const leaf = kp.leafNode
  const cred = leaf.credential
  const identity = cred.credentialType === "basic" ? Buffer.from(cred.identity).toString("utf8") : undefined
  if (identity === undefined || (identity !== uploader.clientId && identity !== uploader.legacyHandle)) {
    return reject("credential_mismatch", `the identity must be ${uploader.clientId}`)
  }
  if (uploader.mlsKey && !sameBytes(leaf.signaturePublicKey, uploader.mlsKey)) {
    return reject("credential_mismatch", "the signature key is not the one bound to this device")
  }
  if (sameBytes(kp.initKey, leaf.hpkePublicKey)) return reject("malformed", "init key equals the encryption key")

  const notBefore = Number(leaf.lifetime.notBefore) * 1000
  const notAfter = Number(leaf.lifetime.notAfter) * 1000
  if (notAfter <= now || notBefore > now + notBeforeSkewMs) return reject("expired")
  if (notAfter > now + maxLifetimeMs) return reject("lifetime_too_long")

  const [kpOk, leafOk] = await Promise.all([
    verifyKeyPackage(kp, cs.signature),
    verifyLeafNodeSignatureKeyPackage(leaf, cs.signature),
  ]).catch(() => [false, false])
  if (!kpOk) return reject("bad_signature", "KeyPackage signature")
  if (!leafOk) return reject("bad_signature", "leaf node signature")

  const ref = await refhash("MLS 1.0 KeyPackage Reference", bare, cs.hash)
  return {
    ok: true,
    kp: {
      ref: toBase64Url(ref),
      initKey: kp.initKey,
      cipherSuite: ciphersuites[kp.cipherSuite],
      data: bare,
      notAfter,
      signatureKey: leaf.signaturePublicKey,
    },
  }
}
