/**
 * The authentication service of DESIGN §3, as ts-mls sees it. A basic credential only names a device
 * (its client id `<user-id>:<device-id>@<domain>`, or the bare user name of a leaf from before
 * devices); binding that identity to the leaf's signature key is the application's job (RFC 9420
 * §5.3.1). The daemon supplies a CredentialCheck (directory lookup plus pinning on first sight);
 * every credential ts-mls meets (joining, adds, commits, updates) goes through it.
 */
import type { AuthenticationService, Credential } from "ts-mls"
import { GroupError } from "./groupError.js"

export type CredentialVerdict = { kind: "accepted" } | { kind: "refused"; reason: string }

/** Whether the credential identity may sign with `signaturePublicKey`; a refusal is a verdict, not an exception. */
export type CredentialCheck = (identity: string, signaturePublicKey: Uint8Array) => Promise<CredentialVerdict>

const utf8 = new TextDecoder("utf-8", { fatal: true })

/** The identity a credential names (a client id, or a bare user name); only UTF-8 basic credentials name one. */
export function identityOf(credential: Credential): string {
  if (credential.credentialType !== "basic")
    throw new GroupError("credential_refused", `unsupported credential type ${credential.credentialType}`)
  try {
    return utf8.decode(credential.identity)
  } catch {
    throw new GroupError("credential_refused", "credential identity is not UTF-8")
  }
}

export function basicCredential(identity: string): Credential {
  return { credentialType: "basic", identity: new TextEncoder().encode(identity) }
}

/**
 * Adapts a CredentialCheck to ts-mls. A refusal throws a GroupError from inside ts-mls (which awaits
 * the service without catching), so the caller learns who was refused and why instead of a generic
 * "could not validate credential".
 */
export function authServiceFor(check: CredentialCheck): AuthenticationService {
  return {
    async validateCredential(credential, signaturePublicKey) {
      const identity = identityOf(credential)
      const verdict = await check(identity, signaturePublicKey)
      if (verdict.kind === "refused")
        throw new GroupError("credential_refused", `credential of ${identity} refused: ${verdict.reason}`, {
          identity,
          reason: verdict.reason,
        })
      return true
    },
  }
}
