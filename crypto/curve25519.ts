// X25519 and Ed25519 on libsodium (sodium-native), on the calling thread (a fresh X25519 key pair may be one the
// worker drew ahead: parallel.ts). libsodium's Curve25519 code is faster than OpenSSL 3.0's here (Ed25519 verify ~44
// vs ~77 µs, sign ~15 vs ~26 µs, X25519 public key ~13 vs ~30 µs) and takes raw key bytes, so no KeyObject is
// imported per key. The results are the same bytes: Ed25519 signatures are deterministic (RFC 8032) and X25519 is a
// function (RFC 7748); the RFC 9420 vectors and mixed groups check both.
import sodium from "sodium-native"
import { CryptoError } from "ts-mls/mlsError.js"
import { takeSpareX25519 } from "./parallel.js"
import { randomBytes } from "./rng.js"

/** A view of the caller's bytes as the Buffer type sodium-native's typings ask for (no copy). */
function buf(b: Uint8Array): Buffer {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength)
}

export function x25519PublicKey(privateKey: Uint8Array): Uint8Array {
  const out = Buffer.alloc(32)
  sodium.crypto_scalarmult_base(out, buf(privateKey))
  return new Uint8Array(out.buffer, out.byteOffset, 32)
}

/** A fresh key pair: one the worker drew ahead if it has one ready (parallel.ts), else drawn here. */
export function x25519Generate(): { privateKey: Uint8Array; publicKey: Uint8Array } {
  const spare = takeSpareX25519()
  if (spare !== undefined) return spare
  const privateKey = randomBytes(32)
  return { privateKey, publicKey: x25519PublicKey(privateKey) }
}

/** X25519(k, u). libsodium refuses an all-zero result (a low-order u), which RFC 9180 §7.1.4 requires us to reject. */
export function x25519(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  const out = Buffer.alloc(32)
  try {
    sodium.crypto_scalarmult(out, buf(privateKey), buf(publicKey))
  } catch {
    throw new CryptoError("X25519 produced the all-zero shared secret")
  }
  return new Uint8Array(out.buffer, out.byteOffset, 32)
}

/** libsodium's signing key: the 32-byte seed followed by the public key. */
export function ed25519SecretKey(seed: Uint8Array): { secretKey: Buffer; publicKey: Uint8Array } {
  const secretKey = Buffer.alloc(64)
  const publicKey = Buffer.alloc(32)
  sodium.crypto_sign_seed_keypair(publicKey, secretKey, buf(seed))
  return { secretKey, publicKey: new Uint8Array(publicKey.buffer, publicKey.byteOffset, 32) }
}

export function ed25519Sign(secretKey: Buffer, message: Uint8Array): Uint8Array {
  const signature = Buffer.alloc(64)
  sodium.crypto_sign_detached(signature, buf(message), secretKey)
  return new Uint8Array(signature.buffer, signature.byteOffset, 64)
}

/** libsodium's verdict on one Ed25519 signature (signature.ts asks OpenSSL again about a rejection). */
export function ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  return sodium.crypto_sign_verify_detached(buf(signature), buf(message), buf(publicKey))
}
