/** KeyPackage generation (RFC 9420 §10), signed with the identity's one signature key. */
import { ciphersuites, defaultCapabilities, generateKeyPackageWithKey, type CiphersuiteImpl } from "ts-mls"
import { encodeKeyPackage, makeKeyPackageRef } from "ts-mls/keyPackage.js"
import { toBase64Url } from "../../rpc-schema/common.js"
import type { NewKey } from "../store/poolStore.js"
import type { SignatureKeyPair } from "./identity.js"

/** not_before is set this far in the past, so a server whose clock is a little behind accepts the key. */
const notBeforeSlackMs = 3600_000

export interface KeyPackageInput {
  /** The credential identity: this device's client id. */
  identity: string
  /** The same arrays on every call: the crypto provider caches the signing key by array identity. */
  keys: SignatureKeyPair
  suite: CiphersuiteImpl
  now: number
  lifetimeMs: number
  lastResort: boolean
}

/** One KeyPackage with its private parts and its KeyPackageRef, ready to be persisted. */
export async function generateKeyPackage(input: KeyPackageInput): Promise<NewKey> {
  const notAfterS = Math.floor((input.now + input.lifetimeMs) / 1000)
  const { publicPackage, privatePackage } = await generateKeyPackageWithKey(
    { credentialType: "basic", identity: new TextEncoder().encode(input.identity) },
    defaultCapabilities(),
    { notBefore: BigInt(Math.floor((input.now - notBeforeSlackMs) / 1000)), notAfter: BigInt(notAfterS) },
    [],
    { signKey: input.keys.privateKey, publicKey: input.keys.publicKey },
    input.suite,
  )
  return {
    ref: toBase64Url(await makeKeyPackageRef(publicPackage, input.suite.hash)),
    cipherSuite: ciphersuites[input.suite.name],
    lastResort: input.lastResort,
    publicData: encodeKeyPackage(publicPackage),
    initPrivate: privatePackage.initPrivateKey,
    hpkePrivate: privatePackage.hpkePrivateKey,
    notAfter: notAfterS * 1000,
    createdAt: input.now,
  }
}
