// Real identities, a directory with pinning, and KeyPackages from the daemon's own generator.
import type { CiphersuiteImpl, KeyPackage, PrivateKeyPackage } from "ts-mls"
import { decodeKeyPackage } from "ts-mls/keyPackage.js"
import type { CredentialCheck } from "../../../daemon/mls/credentialCheck.js"
import { newSignatureKeyPair } from "../../../daemon/mls/identity.js"
import type { SignatureKeyPair } from "../../../daemon/mls/identity.js"
import { generateKeyPackage } from "../../../daemon/mls/keyPackages.js"

export interface User {
  identity: string
  keys: SignatureKeyPair
}

export function user(identity: string): User {
  return { identity, keys: newSignatureKeyPair() }
}

/** The server's directory plus a client's pins: unknown users and changed keys are refused. */
export function directoryCheck(directory: Map<string, Uint8Array>): CredentialCheck {
  const pinned = new Map<string, string>()
  return async (identity, key) => {
    const listed = directory.get(identity)
    if (listed === undefined) return { kind: "refused", reason: "unknown user" }
    const hex = Buffer.from(key).toString("hex")
    if (Buffer.from(listed).toString("hex") !== hex) return { kind: "refused", reason: "key differs from directory" }
    const pin = pinned.get(identity)
    if (pin !== undefined && pin !== hex) return { kind: "refused", reason: "key changed since pinned" }
    pinned.set(identity, hex)
    return { kind: "accepted" }
  }
}

export interface FreshKeyPackage {
  keyPackage: KeyPackage
  privateKeyPackage: PrivateKeyPackage
}

export async function freshKeyPackage(
  u: User,
  cs: CiphersuiteImpl,
  now = Date.now(),
  lifetimeMs = 14 * 24 * 3600_000,
): Promise<FreshKeyPackage> {
  const k = await generateKeyPackage({
    identity: u.identity,
    keys: u.keys,
    suite: cs,
    now,
    lifetimeMs,
    lastResort: false,
  })
  const decoded = decodeKeyPackage(k.publicData, 0)
  if (decoded === undefined) throw new Error("generated KeyPackage does not decode")
  return {
    keyPackage: decoded[0],
    privateKeyPackage: {
      initPrivateKey: k.initPrivate,
      hpkePrivateKey: k.hpkePrivate,
      signaturePrivateKey: u.keys.privateKey,
    },
  }
}
