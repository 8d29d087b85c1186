// ts-mls Hash on node:crypto: one synchronous call each, no key import for HMAC.
import { createHmac, hash, timingSafeEqual } from "node:crypto"
import type { Hash } from "ts-mls"
import { toBytes } from "./bytes.js"
import type { HashParams } from "./suites.js"

export function hmac(h: HashParams, key: Uint8Array, data: Uint8Array): Uint8Array {
  return toBytes(createHmac(h.name, key).update(data).digest())
}

export function makeHash(h: HashParams): Hash {
  return {
    async digest(data) {
      return toBytes(hash(h.name, data, "buffer"))
    },
    async mac(key, data) {
      return hmac(h, key, data)
    },
    async verifyMac(key, mac, data) {
      const expected = hmac(h, key, data)
      return mac.length === expected.length && timingSafeEqual(mac, expected)
    },
  }
}
