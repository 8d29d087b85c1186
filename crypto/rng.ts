// Random bytes for ts-mls and for this provider's own keys, from libsodium's `randombytes_buf`, which reads the OS
// CSPRNG (getrandom on Linux), the source node:crypto's DRBG is seeded from. Small draws come from a pool of OS
// randomness read 4 kB at a time: one getrandom call per draw (an application message draws its 4-byte reuse guard)
// cost ~10 % of encrypting a message, far more than its ~1.5 µs in a tight loop.
import sodium from "sodium-native"
import type { Rng } from "ts-mls"

/** Draws up to this size come from the pool; larger ones straight from the OS. */
const pooledUpTo = 256
const pool = Buffer.alloc(4096)
/** The pool's bytes before `next` were handed out (and wiped); the rest are still unused. */
let next = pool.length

export function randomBytes(n: number): Uint8Array {
  const bytes = new Uint8Array(n) // an ArrayBuffer of its own, not a slice of Buffer's shared pool
  if (n > pooledUpTo) {
    sodium.randombytes_buf(Buffer.from(bytes.buffer, 0, n))
    return bytes
  }
  if (next + n > pool.length) {
    sodium.randombytes_buf(pool)
    next = 0
  }
  bytes.set(pool.subarray(next, next + n))
  // Wiped as it is handed out: the pool never holds a copy of bytes that may have become a key.
  pool.fill(0, next, next + n)
  next += n
  return bytes
}

export const nodeRng: Rng = { randomBytes }
