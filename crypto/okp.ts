// Raw-byte import/export of X25519, X448, Ed25519 and Ed448 keys through JWK. On Node 20 (OpenSSL 3) this is ~10×
// faster than DER: importing a PKCS#8 key goes through OpenSSL's generic decoder (~330 µs), a JWK through
// EVP_PKEY_new_raw_private_key (~30 µs, the public key computation included).
import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPair, generateKeyPairSync } from "node:crypto"
import type { JsonWebKey, KeyObject } from "node:crypto"
import { CryptoError } from "ts-mls/mlsError.js"
import { fromBase64Url, toBase64Url } from "./bytes.js"
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

// @types/node 20 omits this overload too: a public key encoded at generation time, the private one a KeyObject.
const generateWithJwkPublic = generateKeyPairSync as unknown as (
  type: (typeof nodeTypes)[KemCurve],
  options: { publicKeyEncoding: { format: "jwk" } },
) => { publicKey: JsonWebKey; privateKey: KeyObject }

/**
 * A fresh key pair whose private half never leaves OpenSSL (HPKE ephemeral keys). The public half is encoded at
 * generation time: exporting a fresh X25519 public KeyObject as JWK in a loop hung Node 20 here too (trap 3).
 */
export function generateEphemeral(curve: KemCurve): { privateKey: KeyObject; publicKey: Uint8Array } {
  const { privateKey, publicKey } = generateWithJwkPublic(nodeTypes[curve], { publicKeyEncoding: { format: "jwk" } })
  return { privateKey, publicKey: fromBase64Url(jwkField(publicKey.x)) }
}

// The asynchronous form of the same overload (libuv's thread pool does the work).
const generateWithJwkPublicAsync = generateKeyPair as unknown as (
  type: (typeof nodeTypes)[KemCurve],
  options: { publicKeyEncoding: { format: "jwk" } },
  callback: (err: Error | null, publicKey: JsonWebKey, privateKey: KeyObject) => void,
) => void

type Ephemeral = { privateKey: KeyObject; publicKey: Uint8Array }

/** generateEphemeral on libuv's thread pool. */
export function generateEphemeralAsync(curve: KemCurve): Promise<Ephemeral> {
  return new Promise((resolve, reject) => {
    generateWithJwkPublicAsync(
      nodeTypes[curve],
      { publicKeyEncoding: { format: "jwk" } },
      (err, publicKey, privateKey) => {
        if (err !== null) reject(err)
        else {
          try {
            resolve({ privateKey, publicKey: fromBase64Url(jwkField(publicKey.x)) })
          } catch (e) {
            reject(e)
          }
        }
      },
    )
  })
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

/** The u-coordinate of each curve's base point (RFC 7748 §4.1, §4.2). */
const basePoints: Record<KemCurve, KeyObject> = {
  X25519: importPublic(
    "X25519",
    Uint8Array.from({ length: 32 }, (_, i) => (i === 0 ? 9 : 0)),
  ),
  X448: importPublic(
    "X448",
    Uint8Array.from({ length: 56 }, (_, i) => (i === 0 ? 5 : 0)),
  ),
}

/**
 * The raw public key of a private DH key: the DH of the private key with the base point (RFC 7748 §6), which is
 * what the public key is, without exporting any KeyObject (see generateEphemeral).
 */
export function publicBytes(curve: KemCurve, privateKey: KeyObject): Uint8Array {
  return new Uint8Array(diffieHellman({ privateKey, publicKey: basePoints[curve] }))
}

function checkSize(curve: OkpCurve, raw: Uint8Array, kind: string): void {
  if (raw.length !== keySizes[curve])
    throw new CryptoError(`${curve} ${kind} key must be ${keySizes[curve]} bytes, got ${raw.length}`)
}

function jwkField(v: string | undefined): string {
  if (v === undefined) throw new CryptoError("JWK export is missing a key field")
  return v
}
