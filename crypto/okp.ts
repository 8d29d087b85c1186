// Raw-byte keys on OpenSSL (X448, Ed448, and the Ed25519 second opinion of signature.ts), imported through JWK: on
// Node 20 (OpenSSL 3) that is ~10× faster than DER: a PKCS#8 key goes through OpenSSL's generic decoder (~330 µs),
// a JWK through EVP_PKEY_new_raw_private_key (~30 µs, the public key computation included). And the DH of each KEM
// curve, on raw bytes: X25519 through libsodium (curve25519.ts), X448 through OpenSSL.
import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync } from "node:crypto"
import type { JsonWebKey, KeyObject } from "node:crypto"
import { CryptoError } from "ts-mls/mlsError.js"
import { fromBase64Url, toBase64Url } from "../rpc-schema/common.js"
import { x25519, x25519Generate, x25519PublicKey } from "./curve25519.js"
import type { KemCurve, SignatureCurve } from "./suites.js"

export type OkpCurve = KemCurve | SignatureCurve

/** Raw key sizes; private and public keys have the same length on these curves. */
export const keySizes: Record<OkpCurve, number> = { X25519: 32, X448: 56, Ed25519: 32, Ed448: 57 }

const nodeTypes = { X25519: "x25519", X448: "x448", Ed25519: "ed25519", Ed448: "ed448" } as const

// @types/node 20 omits the JWK overload that Node 20 implements.
const generateJwkPair = generateKeyPairSync as unknown as (
  type: (typeof nodeTypes)[OkpCurve],
  options: { publicKeyEncoding: { format: "jwk" }; privateKeyEncoding: { format: "jwk" } },
) => { publicKey: JsonWebKey; privateKey: JsonWebKey }

const jwkEncoding = { publicKeyEncoding: { format: "jwk" }, privateKeyEncoding: { format: "jwk" } } as const

/**
 * A fresh key pair as raw bytes. The encoding is requested at generation time: exporting fresh OKP private keys as
 * JWK one by one in a loop can hang Node 20 (shared/NOTES.md trap 3).
 */
export function generateRaw(curve: OkpCurve): { privateKey: Uint8Array; publicKey: Uint8Array } {
  const { privateKey, publicKey } = generateJwkPair(nodeTypes[curve], jwkEncoding)
  return { privateKey: fromBase64Url(jwkField(privateKey.d)), publicKey: fromBase64Url(jwkField(publicKey.x)) }
}

export function importPrivate(curve: OkpCurve, raw: Uint8Array): KeyObject {
  checkSize(curve, raw, "private")
  const d = toBase64Url(raw)
  // JWK import requires an `x` of the right length but derives the public key from `d` and ignores `x` (checked by
  // the tests: keys imported this way sign and agree with their real public keys).
  return createPrivateKey({ key: { kty: "OKP", crv: curve, d, x: d }, format: "jwk" })
}

export function importPublic(curve: OkpCurve, raw: Uint8Array): KeyObject {
  checkSize(curve, raw, "public")
  return createPublicKey({ key: { kty: "OKP", crv: curve, x: toBase64Url(raw) }, format: "jwk" })
}

/** The u-coordinate of X448's base point (RFC 7748 §4.2). */
const x448Base = importPublic(
  "X448",
  Uint8Array.from({ length: 56 }, (_, i) => (i === 0 ? 5 : 0)),
)

/** A KEM curve's key pairs and DH, all on raw key bytes. */
export interface DhCurve {
  generate(): { privateKey: Uint8Array; publicKey: Uint8Array }
  publicKey(privateKey: Uint8Array): Uint8Array
  /** Throws CryptoError for an all-zero result (a low-order public key), as RFC 9180 §7.1.4 requires. */
  dh(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array
}

export const dhCurves: Record<KemCurve, DhCurve> = {
  X25519: { generate: x25519Generate, publicKey: x25519PublicKey, dh: x25519 },
  X448: {
    generate: () => generateRaw("X448"),
    // The DH of the private key with the base point (RFC 7748 §6) is the public key, without exporting a KeyObject
    // (exporting fresh OKP keys can hang Node 20: trap 3).
    publicKey: (privateKey) => x448(importPrivate("X448", privateKey), x448Base),
    dh: (privateKey, publicKey) => x448(importPrivate("X448", privateKey), importPublic("X448", publicKey)),
  },
}

/** OpenSSL fails an all-zero X448 result. */
function x448(privateKey: KeyObject, publicKey: KeyObject): Uint8Array {
  try {
    return new Uint8Array(diffieHellman({ privateKey, publicKey }))
  } catch (e) {
    throw new CryptoError(`X448: ${e instanceof Error ? e.message : String(e)}`)
  }
}

function checkSize(curve: OkpCurve, raw: Uint8Array, kind: string): void {
  if (raw.length !== keySizes[curve])
    throw new CryptoError(`${curve} ${kind} key must be ${keySizes[curve]} bytes, got ${raw.length}`)
}

function jwkField(v: string | undefined): string {
  if (v === undefined) throw new CryptoError("JWK export is missing a key field")
  return v
}
