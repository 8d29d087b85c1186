/**
 * The single table of error codes shared by every process of mls-chat.
 *
 * Each stable snake_case code has the HTTP status the server answers it with and the JSON-RPC
 * error number the daemon answers it with. Numbering rules (never renumber; a retired code keeps
 * its number reserved):
 * - -32000..-32019: generic request and transport errors
 * - -32020..-32039: authentication and authorisation
 * - -32040..-32059: key directory and KeyPackage pool
 * - -32060..-32079: groups and delivery
 * - -32080..-32089: the daemon's own state (profile, identity, local store)
 * - -32090..-32099: reserved
 */
export const errorTable = {
  /** The request is malformed: bad JSON, wrong types, unknown fields, bad base64url. */
  invalid_request: { http: 400, rpc: -32000, doc: "malformed request" },
  /** The request body is larger than the server accepts. */
  payload_too_large: { http: 413, rpc: -32001, doc: "request body too large" },
  /** No such resource or route. */
  not_found: { http: 404, rpc: -32002, doc: "not found" },
  /** Too many requests; `details.retryAfterS` says when to try again. */
  rate_limited: { http: 429, rpc: -32003, doc: "rate limited" },
  /** The request conflicts with the current state. */
  conflict: { http: 409, rpc: -32004, doc: "conflict with the current state" },
  /** An unexpected failure; the message is generic and the details are in the log. */
  internal: { http: 500, rpc: -32005, doc: "internal error" },
  /** The server cannot be reached. */
  server_unreachable: { http: 503, rpc: -32006, doc: "server unreachable" },
  /** The content type is not application/json. */
  unsupported_media_type: { http: 415, rpc: -32007, doc: "unsupported media type" },
  /** Too many concurrent connections from one address (the stream's per-IP limit); `details.maxConnections` says the limit. */
  too_many_connections: { http: 429, rpc: -32008, doc: "too many concurrent connections" },

  /** Missing, malformed, unknown or expired bearer token. */
  unauthenticated: { http: 401, rpc: -32020, doc: "authentication required" },
  /** Authenticated, but acting on another user's resources. */
  forbidden: { http: 403, rpc: -32021, doc: "not allowed for this user" },
  /** The user name is registered already. */
  username_taken: { http: 409, rpc: -32022, doc: "user name already registered" },
  /** The proof of possession or the challenge signature does not verify. */
  bad_signature: { http: 400, rpc: -32023, doc: "signature does not verify" },
  /** The challenge is unknown, used already or expired. */
  invalid_challenge: { http: 401, rpc: -32024, doc: "challenge unknown, used or expired" },
  /** No user of that name. */
  unknown_user: { http: 404, rpc: -32025, doc: "no such user" },
  /** This profile has no identity on a server yet. */
  not_registered: { http: 409, rpc: -32026, doc: "not registered" },
  /** The device link code is unknown, used already or expired (codes are single use and short-lived). */
  invalid_link_code: { http: 401, rpc: -32027, doc: "link code unknown, used or expired" },
  /** No device with that id (in that account). */
  unknown_device: { http: 404, rpc: -32028, doc: "no such device" },
  /** The device was removed from its account: it cannot log in or act any more. */
  device_removed: { http: 403, rpc: -32029, doc: "the device was removed" },

  /** The target has no ordinary KeyPackage available and no last-resort key. */
  no_keypackage_available: { http: 404, rpc: -32040, doc: "no KeyPackage available" },
  /** No KeyPackage with that reference. */
  keypackage_not_found: { http: 404, rpc: -32041, doc: "KeyPackage not found" },
  /** The KeyPackage was spent already. */
  already_spent: { http: 409, rpc: -32042, doc: "KeyPackage already spent" },
  /** The reservation id is unknown or is not a reservation of that KeyPackage. */
  reservation_invalid: { http: 409, rpc: -32043, doc: "reservation does not match" },
  /** The reservation's TTL ran out. */
  reservation_expired: { http: 410, rpc: -32044, doc: "reservation expired" },
  /** The KeyPackage is reserved and cannot be withdrawn now. */
  keypackage_reserved: { http: 409, rpc: -32045, doc: "KeyPackage is reserved" },
  /** The target's pool is exhausted (the daemon's name for no_keypackage_available). */
  pool_exhausted: { http: 404, rpc: -32046, doc: "the target's KeyPackage pool is exhausted" },

  /** identity.register on a profile that has an identity already (one identity per profile). */
  already_registered: { http: 409, rpc: -32080, doc: "this profile is registered already" },

  /** A Commit names an epoch other than the group's current one; `details.currentEpoch` says which is. */
  epoch_conflict: { http: 409, rpc: -32060, doc: "the group is at another epoch" },
  /** The caller is not (or is no longer) on the group's roster. */
  not_member: { http: 403, rpc: -32061, doc: "not a member of that group" },
  /** No group with that id. */
  group_not_found: { http: 404, rpc: -32062, doc: "group not found" },
  /** A group with that id exists already. */
  group_exists: { http: 409, rpc: -32063, doc: "group exists already" },
  /** An MLS message is larger than the server's message size limit; `details.maxBytes` says the limit. */
  message_too_large: { http: 413, rpc: -32064, doc: "message too large" },
  /** Not a well-formed MLSMessage of the expected kind, or for another group. */
  malformed_message: { http: 400, rpc: -32065, doc: "malformed MLS message" },
  /**
   * The daemon's MLS state of the group cannot follow it any more: retention deleted log entries it had not
   * fetched, a Commit among them (`group.historyLost` said `canContinue: false`), or a Commit it could not apply.
   * Nothing can be sent to the group until this profile rejoins it (`group.rejoin`) or a member re-adds it.
   */
  group_out_of_sync: { http: 409, rpc: -32066, doc: "this member's state of the group is out of sync (history lost)" },
  /** A message with nothing to read: empty, or only white space (spaces, tabs, line breaks). Nothing is sent. */
  empty_message: { http: 400, rpc: -32067, doc: "the message is empty or only white space" },
  /**
   * The server holds no GroupInfo of the group's current epoch (the Commit that started it carried none), so nobody
   * can join it by external Commit until a member commits again.
   */
  group_info_unavailable: { http: 404, rpc: -32068, doc: "no GroupInfo of the group's current epoch" },
} as const

/** A stable snake_case error code. */
export type ErrorCode = keyof typeof errorTable

/** Per-item rejection reasons of a KeyPackage upload (not request errors: the request succeeds). */
export const keyPackageRejections = {
  /** Not a KeyPackage (bare or MLSMessage-wrapped), or trailing bytes, or init key = encryption key. */
  malformed: "not a well-formed KeyPackage",
  /** The ciphersuite is not served by this server. */
  unsupported_ciphersuite: "ciphersuite not supported",
  /**
   * The credential is not a basic credential whose identity is the uploading device's client id, or its signature key
   * is not the MLS key bound to that device by its first accepted upload.
   */
  credential_mismatch: "credential is not the uploading device's (client id or bound MLS key)",
  /**
   * The leaf's signature key is not the expected one: the daemon's own check of a KeyPackage against the directory.
   * The server no longer answers it (issue 16: a key other than the bound one is credential_mismatch there).
   */
  signature_key_mismatch: "leaf signature key is not the registered key",
  /** The KeyPackage or leaf node signature does not verify. */
  bad_signature: "signature does not verify",
  /** not_after is in the past, or not_before in the future. */
  expired: "lifetime is not current",
  /** not_after is more than 90 days away. */
  lifetime_too_long: "lifetime exceeds 90 days",
  /** The HPKE init key was seen before in another KeyPackage. */
  init_key_reused: "HPKE init key was used before",
  /** The uploader holds the maximum number of KeyPackages already. */
  cap_exceeded: "KeyPackage cap reached",
} as const

export type KeyPackageRejection = keyof typeof keyPackageRejections

/** The error every process throws for an expected failure; carries a code of the table. */
export class AppError extends Error {
  override readonly name = "AppError"
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message)
  }
}

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === "string" && Object.hasOwn(errorTable, code)
}
