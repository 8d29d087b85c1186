/** The identity's Ed25519 key pair: generation and the signatures the server's authentication asks for. */
import { createPrivateKey, generateKeyPairSync, sign, type JsonWebKey, type KeyObject } from "node:crypto"
import { fromBase64Url, toBase64Url } from "../../rpc-schema/common.js"

export interface SignatureKeyPair {
  /** 32-byte Ed25519 public key. */
  publicKey: Uint8Array
  /** 32-byte Ed25519 seed (the form ts-mls's `signKey` takes). */
  privateKey: Uint8Array
}

export function newSignatureKeyPair(): SignatureKeyPair {
  // JWK asked for at generation time: exporting fresh OKP keys later can hang Node 20 (NOTES.md trap 3).
  const { publicKey, privateKey } = generateKeyPairSync("ed25519", {
    publicKeyEncoding: { format: "jwk" },
    privateKeyEncoding: { format: "jwk" },
  }) as unknown as { publicKey: JsonWebKey; privateKey: JsonWebKey }
  return { publicKey: fromBase64Url(publicKey.x!), privateKey: fromBase64Url(privateKey.d!) }
}

/** Signs UTF-8 text with the identity key; the KeyObject is built once per key pair. */
export function textSigner(keys: SignatureKeyPair): (text: string) => string {
  const key: KeyObject = createPrivateKey({
    key: { kty: "OKP", crv: "Ed25519", d: toBase64Url(keys.privateKey), x: toBase64Url(keys.publicKey) },
    format: "jwk",
  })
  return (text) => toBase64Url(sign(null, Buffer.from(text, "utf8"), key))
}
