/** Shared wire building blocks: base64url bytes, names, ids, timestamps. */
import { CloneType, Type, type Static, type TSchema } from "@sinclair/typebox"

/** Binary data as unpadded base64url (RFC 4648 §5). */
export const Base64Url = (opts: { minLength?: number; maxLength?: number; description?: string } = {}) =>
  Type.String({ pattern: "^[A-Za-z0-9_-]*$", ...opts })

/** The project's base64url codec (server, daemon, clients): strict on decoding, since its input crosses processes. */
export function toBase64Url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64url")
}

/** Decodes unpadded base64url; throws on any character outside the alphabet or an impossible length. */
export function fromBase64Url(text: string): Uint8Array {
  if (!/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) throw new TypeError("not base64url")
  return new Uint8Array(Buffer.from(text, "base64url"))
}

/** A user name: lower-case letters, digits, `.`, `_`, `-`; 1 to 32 characters, starting alphanumeric. */
export const Username = Type.String({
  pattern: "^[a-z0-9][a-z0-9._-]{0,31}$",
  description: "user name: [a-z0-9][a-z0-9._-]{0,31}",
})
export type Username = Static<typeof Username>

/**
 * A name as a person types it (a user name given to the daemon, a profile name): like `Username`, but upper-case
 * letters are allowed, and `normalizeName` folds them. One rule for profile names and user names alike: "Alice" is
 * "alice" everywhere.
 */
export const NameInput = Type.String({
  pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$",
  description: "a name, [A-Za-z0-9][A-Za-z0-9._-]{0,31}; folded to lower case",
})

/** The name in its one spelling (lower case), or undefined when it is no valid name even then. */
export function normalizeName(text: string): Username | undefined {
  const name = text.toLowerCase()
  return /^[a-z0-9][a-z0-9._-]{0,31}$/.test(name) ? name : undefined
}

/** A KeyPackageRef (RFC 9420 §5.2), computed by the server, base64url. */
export const KeyPackageRef = Base64Url({ minLength: 22, maxLength: 88, description: "KeyPackageRef, base64url" })
export type KeyPackageRef = Static<typeof KeyPackageRef>

/** An opaque reservation id handed out by `reserve`. */
export const ReservationId = Type.String({ pattern: "^[A-Za-z0-9_-]{16,64}$", description: "reservation id" })
export type ReservationId = Static<typeof ReservationId>

/** Milliseconds since the Unix epoch. */
export const TimestampMs = Type.Integer({ minimum: 0, description: "milliseconds since the Unix epoch" })

/** MLS ciphersuite number (RFC 9420 §17.1); 1 is MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519. */
export const CipherSuiteId = Type.Integer({ minimum: 1, maximum: 65535, description: "MLS ciphersuite id" })

/** A strict object: unknown fields are an error, never silently dropped. */
export const Strict = <T extends Record<string, TSchema>>(props: T, opts: { description?: string } = {}) =>
  Type.Object(props, { additionalProperties: false, ...opts })

/**
 * `schema` with a one-line `description` for `rpc.discover` (a copy: shared schemas such as `Username` keep their own).
 * Every daemon method param, result field and notification field carries one (test/daemon/rpc.test.ts).
 */
export const described = <T extends TSchema>(schema: T, description: string): T => CloneType(schema, { description })
