/**
 * The authentication service of DESIGN §3, as ts-mls sees it. A basic credential only names a user;
 * binding that name to the leaf's signature key is the application's job (RFC 9420 §5.3.1). The
 * daemon supplies a CredentialCheck (directory lookup plus pinning on first sight); every
 * credential ts-mls meets (joining, adds, commits, updates) goes through it.
 */
import type { AuthenticationService, Credential } from "ts-mls"
import { GroupError } from "./groupError.js"

export type CredentialVerdict = { kind: "accepted" } | { kind: "refused"; reason: string }

/** Whether `username` may sign with `signaturePublicKey`; a refusal is a verdict, not an exception. */
export type CredentialCheck = (username: string, signaturePublicKey: Uint8Array) => Promise<CredentialVerdict>

const utf8 = new TextDecoder("utf-8", { fatal: true })

/** The user a credential names; only UTF-8 basic credentials name one of ours. */
export function usernameOf(credential: Credential): string {
  if (credential.credentialType !== "basic")
    throw new GroupError("credential_refused", `unsupported credential type ${credential.credentialType}`)
  try {
    return utf8.decode(credential.identity)
  } catch {
    throw new GroupError("credential_refused", "credential identity is not UTF-8")
  }
}

export function basicCredential(username: string): Credential {
  return { credentialType: "basic", identity: new TextEncoder().encode(username) }
}

/**
 * Adapts a CredentialCheck to ts-mls. A refusal throws a GroupError from inside ts-mls (which awaits
 * the service without catching), so the caller learns who was refused and why instead of a generic
 * "could not validate credential".
 */
export function authServiceFor(check: CredentialCheck): AuthenticationService {
  return {
    async validateCredential(credential, signaturePublicKey) {
      const username = usernameOf(credential)
      const verdict = await check(username, signaturePublicKey)
      if (verdict.kind === "refused")
        throw new GroupError("credential_refused", `credential of ${username} refused: ${verdict.reason}`, {
          username,
          reason: verdict.reason,
        })
      return true
    },
  }
}
