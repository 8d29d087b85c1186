/** The typed errors of the MLS layer, and the one place where ts-mls's error classes become codes. */
import { CodecError, CryptoError, CryptoVerificationError, ValidationError } from "ts-mls/mlsError.js"
import type { ErrorCode, KeyPackageRejection } from "../../rpc-schema/errors.js"

/** Each code of the MLS layer with the rpc-schema code the daemon answers it with. */
export const groupErrorCodes = {
  /** A credential in the group does not match the directory or the pinned key (DESIGN §3). */
  credential_refused: "forbidden",
  /** An invitee's KeyPackage is unusable; `details.reason` is a KeyPackageRejection. */
  keypackage_invalid: "forbidden",
  /** The group name is empty or too long. */
  invalid_name: "invalid_request",
  /** The user is in the group already. */
  already_member: "conflict",
  /** No member of that name. */
  unknown_member: "not_found",
  /** A member cannot commit its own removal (RFC 9420 §12.2); it proposes to leave instead. */
  cannot_remove_self: "forbidden",
  /** This member proposed to leave; it waits for another member to commit that. */
  leave_pending: "conflict",
  /** ts-mls sends no application message while proposals are uncommitted; commit them first. */
  proposals_pending: "conflict",
  /** This member was removed from the group. */
  not_member: "not_member",
  /** Not a well-formed MLSMessage of the expected kind, or for another group. */
  malformed_message: "malformed_message",
  /** The message is for a later epoch than this state: a commit was missed. */
  epoch_mismatch: "epoch_conflict",
  /** The message failed MLS validation (signature, membership tag, confirmation tag, proposal rules). */
  invalid_message: "malformed_message",
  /** The message cannot be decrypted with this member's keys. */
  undecryptable: "malformed_message",
  /** Anything unrecognised. */
  internal: "internal",
} as const satisfies Record<string, ErrorCode>

export type GroupErrorCode = keyof typeof groupErrorCodes

export class GroupError extends Error {
  override readonly name = "GroupError"
  constructor(
    readonly code: GroupErrorCode,
    message: string,
    readonly details?: { reason?: KeyPackageRejection | string; identity?: string; [key: string]: unknown },
  ) {
    super(message)
  }

  /** The rpc-schema code this error is answered with. */
  get rpcCode(): ErrorCode {
    return groupErrorCodes[this.code]
  }
}

/** Maps anything thrown by ts-mls (or by this layer) to a GroupError; the only such mapping. */
export function toGroupError(e: unknown): GroupError {
  if (e instanceof GroupError) return e
  const message = e instanceof Error ? e.message : String(e)
  if (e instanceof CodecError) return new GroupError("malformed_message", message)
  if (e instanceof CryptoVerificationError || e instanceof ValidationError)
    return new GroupError("invalid_message", message)
  if (e instanceof CryptoError) return new GroupError("undecryptable", message)
  // UsageError means this layer misused ts-mls: a bug, like anything unrecognised.
  return new GroupError("internal", message)
}

/** Runs `f`, turning whatever it throws into a GroupError. */
export async function guarded<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f()
  } catch (e) {
    throw toGroupError(e)
  }
}
