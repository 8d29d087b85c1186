// HKDF (RFC 5869) split into Extract and Expand, as MLS and HPKE need them separately; node's hkdfSync only does both.
import { createHmac } from "node:crypto"
import type { Kdf } from "ts-mls"
import { concat, toBytes } from "./bytes.js"
import type { HashParams } from "./suites.js"

/** HKDF-Extract; an empty salt is HMAC's zero-padded key, i.e. the RFC's "string of HashLen zeros". */
export function extract(h: HashParams, salt: Uint8Array, ikmParts: readonly Uint8Array[]): Uint8Array {
  const mac = createHmac(h.name, salt)
  for (const p of ikmParts) mac.update(p)
  return toBytes(mac.digest())
}

/** HKDF-Expand with the info given in parts, so callers need not concatenate labels. */
export function expand(h: HashParams, prk: Uint8Array, infoParts: readonly Uint8Array[], length: number): Uint8Array {
  if (length > 255 * h.size) throw new RangeError(`HKDF-Expand length ${length} too large`)
  if (length <= h.size) {
    // The common case in MLS and HPKE: a single block.
    const mac = createHmac(h.name, prk)
    for (const p of infoParts) mac.update(p)
    const block = mac.update(counter(1)).digest()
    return toBytes(length === h.size ? block : block.subarray(0, length))
  }
  const info = concat(infoParts)
  const out = new Uint8Array(length)
  let previous: Uint8Array = new Uint8Array(0)
  for (let i = 1, offset = 0; offset < length; i++) {
    previous = toBytes(createHmac(h.name, prk).update(previous).update(info).update(counter(i)).digest())
    out.set(previous.subarray(0, Math.min(previous.length, length - offset)), offset)
    offset += previous.length
  }
  return out
}

/** HKDF's block counters 1..255, allocated once (the secret tree alone expands ~600 times per 100-member epoch). */
const counters = Array.from({ length: 256 }, (_, i) => new Uint8Array([i]))

function counter(i: number): Uint8Array {
  const c = counters[i]
  if (c === undefined) throw new RangeError(`HKDF block counter ${i} out of range`)
  return c
}

export function makeKdf(h: HashParams): Kdf {
  return {
    async extract(salt, ikm) {
      return extract(h, salt, [ikm])
    },
    async expand(prk, info, len) {
      return expand(h, prk, [info], len)
    },
    size: h.size,
  }
}
