/** Checks an invitee's KeyPackage before it goes into an Add (RFC 9420 §10.1), with typed reasons. */
import type { CiphersuiteImpl, KeyPackage } from "ts-mls"
import { decodeKeyPackage, verifyKeyPackage } from "ts-mls/keyPackage.js"
import { verifyLeafNodeSignatureKeyPackage } from "ts-mls/leafNode.js"
import type { KeyPackageRejection } from "../../rpc-schema/errors.js"
import { identityOf } from "./credentialCheck.js"
import { GroupError } from "./groupError.js"
import { sameBytes } from "../../shared/bytes.js"

/** Which device an invite is for (its client id), its key as the directory says, and the KeyPackage the server handed out. */
export interface Invitee {
  identity: string
  signaturePublicKey: Uint8Array
  keyPackage: KeyPackage
}

function reject(reason: KeyPackageRejection, message: string, identity: string): never {
  throw new GroupError("keypackage_invalid", message, { reason, identity })
}

/** A bare KeyPackage encoding (NOTES.md: how KeyPackages are exchanged), with no trailing bytes. */
export function decodeKeyPackageBytes(bytes: Uint8Array): KeyPackage {
  const decoded = decodeKeyPackage(bytes, 0)
  if (decoded === undefined || decoded[1] !== bytes.length)
    throw new GroupError("keypackage_invalid", "not a KeyPackage", { reason: "malformed" })
  return decoded[0]
}

/** Throws keypackage_invalid unless `kp` belongs to `expectedUser` with `expectedSignatureKey` and is usable at `now` (ms). */
export async function validateKeyPackageFor(
  kp: KeyPackage,
  expectedUser: string,
  expectedSignatureKey: Uint8Array,
  now: number,
  cs: CiphersuiteImpl,
): Promise<void> {
  if (kp.version !== "mls10" || kp.cipherSuite !== cs.name)
    reject("unsupported_ciphersuite", `KeyPackage is for ${kp.cipherSuite}, the group uses ${cs.name}`, expectedUser)
  let user: string
  try {
    user = identityOf(kp.leafNode.credential)
  } catch {
    reject("credential_mismatch", "KeyPackage credential is not a UTF-8 basic credential", expectedUser)
  }
  if (user !== expectedUser)
    reject("credential_mismatch", `KeyPackage names ${user}, not ${expectedUser}`, expectedUser)
  if (!sameBytes(kp.leafNode.signaturePublicKey, expectedSignatureKey))
    reject("signature_key_mismatch", `KeyPackage signature key is not ${expectedUser}'s directory key`, expectedUser)
  // Both signatures: the KeyPackage's and its leaf node's (RFC 9420 §10.1, §7.3).
  const signed =
    (await verifyKeyPackage(kp, cs.signature)) && (await verifyLeafNodeSignatureKeyPackage(kp.leafNode, cs.signature))
  if (!signed) reject("bad_signature", "KeyPackage signature does not verify", expectedUser)
  const nowS = BigInt(Math.floor(now / 1000))
  const { notBefore, notAfter } = kp.leafNode.lifetime
  if (notBefore > nowS || notAfter < nowS) reject("expired", "KeyPackage lifetime is not current", expectedUser)
  // The init key must differ from the leaf's encryption key (RFC 9420 §10.1).
  if (sameBytes(kp.initKey, kp.leafNode.hpkePublicKey))
    reject("malformed", "KeyPackage init key equals its encryption key", expectedUser)
}
