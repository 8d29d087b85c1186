// AEAD seal/open on node:crypto; the tag is appended to the ciphertext as in RFC 5116 and the stock provider.
import { createCipheriv, createDecipheriv } from "node:crypto"
import type { CipherGCMTypes } from "node:crypto"
import { CryptoError } from "ts-mls/mlsError.js"
import type { AeadParams } from "./suites.js"

const tagSize = 16

// ChaCha20-Poly1305 has the same AEAD surface as GCM (setAAD, getAuthTag, setAuthTag, 16-byte tag); one overload
// serves both.
const name = (a: AeadParams) => a.cipher as CipherGCMTypes

export function seal(a: AeadParams, key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array) {
  const cipher = createCipheriv(name(a), key, nonce, { authTagLength: tagSize })
  if (aad.length > 0) cipher.setAAD(aad)
  const body = cipher.update(plaintext)
  const last = cipher.final()
  const tag = cipher.getAuthTag()
  const out = new Uint8Array(body.length + last.length + tag.length)
  out.set(body, 0)
  out.set(last, body.length)
  out.set(tag, body.length + last.length)
  return out
}

/** Throws CryptoError when the tag does not verify, as the stock provider does. */
export function open(a: AeadParams, key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array) {
  if (ciphertext.length < tagSize) throw new CryptoError("ciphertext shorter than the AEAD tag")
  const bodyLength = ciphertext.length - tagSize
  try {
    const decipher = createDecipheriv(name(a), key, nonce, { authTagLength: tagSize })
    decipher.setAuthTag(ciphertext.subarray(bodyLength))
    if (aad.length > 0) decipher.setAAD(aad)
    const body = decipher.update(ciphertext.subarray(0, bodyLength))
    const last = decipher.final()
    const out = new Uint8Array(body.length + last.length)
    out.set(body, 0)
    out.set(last, body.length)
    return out
  } catch (e) {
    throw new CryptoError(`AEAD open failed: ${e instanceof Error ? e.message : String(e)}`)
  }
}
