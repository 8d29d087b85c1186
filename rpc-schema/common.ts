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

/** An account's stable id: a UUID v4 assigned by the server at registration, lower-case, hyphenated. */
export const UserId = Type.String({
  pattern: "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
  description: "user id: a UUID v4, lower-case, hyphenated",
})
export type UserId = Static<typeof UserId>

/**
 * A device of an account: 64 bits assigned by the server, written as 16 lower-case hex digits. The server sets the top
 * bit, so no id needs a leading zero (core-crypto writes them unpadded); accepted here is any 16-digit id.
 */
export const DeviceId = Type.String({ pattern: "^[0-9a-f]{16}$", description: "device id: 16 lower-case hex digits" })
export type DeviceId = Static<typeof DeviceId>

/** A server domain as it appears in client ids: lower-case DNS name or IPv4 address. */
const domainPattern = "[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?"
const userIdPattern = "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"

/**
 * A device's qualified client id `<user-id>:<device-id>@<domain>`: the exact bytes (UTF-8) of the identity in the
 * device's MLS BasicCredential, the form Wire's core-crypto (OpenMLS) makes and requires.
 */
export const MlsClientId = Type.String({
  pattern: `^${userIdPattern}:[0-9a-f]{16}@${domainPattern}$`,
  maxLength: 307,
  description: "client id <user-id>:<device-id>@<domain>, the MLS credential identity of one device",
})
export type MlsClientId = Static<typeof MlsClientId>

/** Whether `text` can be the domain of client ids: a lower-case DNS name or IPv4 address. */
export const isClientIdDomain = (text: string): boolean => new RegExp(`^${domainPattern}$`).test(text)

/** The client id of a device, as the server assigns it. */
export const mlsClientId = (userId: string, deviceId: string, domain: string): string =>
  `${userId}:${deviceId}@${domain}`

/** The parts of a client id, or undefined when `text` is none. */
export function parseMlsClientId(text: string): { userId: string; deviceId: string; domain: string } | undefined {
  const m = new RegExp(`^(${userIdPattern}):([0-9a-f]{16})@(${domainPattern})$`).exec(text)
  return m ? { userId: m[1]!, deviceId: m[2]!, domain: m[3]! } : undefined
}

/**
 * A one-time device link code: 16 characters of Crockford base32 (80 random bits) in groups of four, upper case, e.g.
 * `7K3M-Q9ZD-X2AB-HP4R`.
 */
export const LinkCode = Type.String({
  pattern: "^[0-9A-HJKMNP-TV-Z]{4}(?:-[0-9A-HJKMNP-TV-Z]{4}){3}$",
  description: "one-time device link code, XXXX-XXXX-XXXX-XXXX (Crockford base32, upper case)",
})
export type LinkCode = Static<typeof LinkCode>

/** An account named by its handle (a user name) or its user id; the two never look alike (a UUID has 36 characters). */
export const UserRef = Type.String({
  pattern: `^(?:[a-z0-9][a-z0-9._-]{0,31}|${userIdPattern})$`,
  description: "an account: its handle (user name) or its user id",
})
export type UserRef = Static<typeof UserRef>

/** A device or an account: a client id names one device, a handle or user id every device of the account. */
export const UserOrClientRef = Type.String({
  pattern: `^(?:[a-z0-9][a-z0-9._-]{0,31}|${userIdPattern}|${userIdPattern}:[0-9a-f]{16}@${domainPattern})$`,
  maxLength: 307,
  description: "a client id (one device), or a handle or user id (every device of the account)",
})
export type UserOrClientRef = Static<typeof UserOrClientRef>

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
