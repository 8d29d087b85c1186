// Random bytes for ts-mls and for this provider's own keys: libsodium's `randombytes_buf`, which reads the OS CSPRNG
// (getrandom on Linux), the source node:crypto's DRBG is seeded from; ~2 µs a call against `randomFillSync`'s ~5 µs
// (a KeyPackage draws two private keys, an application message its reuse guard).
import sodium from "sodium-native"
import type { Rng } from "ts-mls"

export function randomBytes(n: number): Uint8Array {
  const bytes = new Uint8Array(n) // an ArrayBuffer of its own, not a slice of Buffer's shared pool
  sodium.randombytes_buf(Buffer.from(bytes.buffer, 0, n))
  return bytes
}

export const nodeRng: Rng = { randomBytes }
