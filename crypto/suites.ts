// Which ts-mls ciphersuites the native provider covers, and the parameters of each primitive (RFC 9180 §7 ids, sizes).
import type { AeadAlgorithm, Ciphersuite, HashAlgorithm, KdfAlgorithm, KemAlgorithm, SignatureAlgorithm } from "ts-mls"

export type NodeHash = "sha256" | "sha384" | "sha512"
export type KemCurve = "X25519" | "X448"
export type SignatureCurve = "Ed25519" | "Ed448"

export interface HashParams {
  name: NodeHash
  size: number
}

export interface KdfParams extends HashParams {
  /** RFC 9180 kdf_id. */
  id: number
}

export interface KemParams {
  curve: KemCurve
  /** RFC 9180 kem_id. */
  id: number
  /** The KEM's own KDF (fixed by the KEM, independent of the HPKE KDF). */
  kdf: HashParams
  /** Nsecret; Npk = Nsk = privateKeySize for these curves. */
  secretSize: number
  keySize: number
}

export interface AeadParams {
  /** node:crypto cipher name. */
  cipher: "aes-128-gcm" | "aes-256-gcm" | "chacha20-poly1305"
  /** RFC 9180 aead_id. */
  id: number
  keySize: number
  nonceSize: number
}

export interface NativeSuite {
  hash: HashParams
  kem: KemParams
  kdf: KdfParams
  aead: AeadParams
  signature: SignatureCurve
}

const hashes: Record<HashAlgorithm, HashParams> = {
  "SHA-256": { name: "sha256", size: 32 },
  "SHA-384": { name: "sha384", size: 48 },
  "SHA-512": { name: "sha512", size: 64 },
}

const kdfs: Record<KdfAlgorithm, KdfParams> = {
  "HKDF-SHA256": { id: 0x0001, name: "sha256", size: 32 },
  "HKDF-SHA384": { id: 0x0002, name: "sha384", size: 48 },
  "HKDF-SHA512": { id: 0x0003, name: "sha512", size: 64 },
}

const kems: Partial<Record<KemAlgorithm, KemParams>> = {
  "DHKEM-X25519-HKDF-SHA256": { curve: "X25519", id: 0x0020, kdf: hashes["SHA-256"], secretSize: 32, keySize: 32 },
  "DHKEM-X448-HKDF-SHA512": { curve: "X448", id: 0x0021, kdf: hashes["SHA-512"], secretSize: 64, keySize: 56 },
}

const aeads: Record<AeadAlgorithm, AeadParams> = {
  AES128GCM: { cipher: "aes-128-gcm", id: 0x0001, keySize: 16, nonceSize: 12 },
  AES256GCM: { cipher: "aes-256-gcm", id: 0x0002, keySize: 32, nonceSize: 12 },
  CHACHA20POLY1305: { cipher: "chacha20-poly1305", id: 0x0003, keySize: 32, nonceSize: 12 },
}

const signatures: Partial<Record<SignatureAlgorithm, SignatureCurve>> = { Ed25519: "Ed25519", Ed448: "Ed448" }

/** The node:crypto parameters of `cs`, or undefined when a part of it (P-curves, ML-KEM, ML-DSA…) is not covered. */
export function nativeSuite(cs: Ciphersuite): NativeSuite | undefined {
  const kem = kems[cs.hpke.kem]
  const signature = signatures[cs.signature]
  if (kem === undefined || signature === undefined) return undefined
  return { hash: hashes[cs.hash], kem, kdf: kdfs[cs.hpke.kdf], aead: aeads[cs.hpke.aead], signature }
}
