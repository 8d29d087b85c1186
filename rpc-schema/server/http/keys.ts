/**
 * Key directory: KeyPackage upload, last-resort key, reserve, spend, withdraw, status (DESIGN §2).
 * KeyPackages travel as base64url of the bare `KeyPackage` encoding (RFC 9420 §10); an
 * MLSMessage-wrapped one is accepted on upload too.
 *
 * Pools are per device: the owner routes (`/v1/users/:username/keypackages…`, `:username` the caller's own handle or
 * user id) act on the pool of the session's device. An uploaded KeyPackage's credential must be a basic credential
 * whose identity is exactly that device's client id; its signature key is bound to the device by the first accepted
 * upload (the KeyPackage's own signature proves possession) and every later upload must carry the same key.
 */
import { createHash } from "node:crypto"
import { Type, type Static } from "@sinclair/typebox"
import {
  Base64Url,
  CipherSuiteId,
  DeviceId,
  KeyPackageRef,
  MlsClientId,
  ReservationId,
  Strict,
  TimestampMs,
  toBase64Url,
  UserId,
  UserOrClientRef,
  UserRef,
  Username,
} from "../../common.js"
import { keyPackageRejections } from "../../errors.js"
import { UserParams } from "./auth.js"
import { route } from "./route.js"

/** Most KeyPackages one user may hold on the server (available plus reserved, last resort apart). */
export const keyPackageCap = 64
/** Longest accepted lifetime: not_after at most this far in the future. */
export const maxLifetimeMs = 90 * 24 * 3600 * 1000
/** One encoded KeyPackage, at most 16 KiB. */
export const EncodedKeyPackage = Base64Url({ minLength: 1, maxLength: 21846, description: "KeyPackage, base64url" })

export const UploadBody = Strict({
  keyPackages: Type.Array(EncodedKeyPackage, { minItems: 1, maxItems: keyPackageCap }),
})
export type UploadBody = Static<typeof UploadBody>

export const UploadItemResult = Type.Union([
  Type.Object({ index: Type.Integer(), status: Type.Literal("accepted"), ref: KeyPackageRef, notAfter: TimestampMs }),
  /** The same KeyPackage is stored already; it is stored once. */
  Type.Object({ index: Type.Integer(), status: Type.Literal("duplicate"), ref: KeyPackageRef, notAfter: TimestampMs }),
  Type.Object({
    index: Type.Integer(),
    status: Type.Literal("rejected"),
    reason: Type.Union(Object.keys(keyPackageRejections).map((r) => Type.Literal(r))),
    message: Type.String(),
  }),
])
export type UploadItemResult = Static<typeof UploadItemResult>
export const UploadResult = Type.Object({ results: Type.Array(UploadItemResult) })
export type UploadResult = Static<typeof UploadResult>

export const upload = route({
  method: "POST",
  path: "/v1/users/:username/keypackages",
  auth: true,
  params: UserParams,
  body: UploadBody,
  status: 200,
  response: UploadResult,
  errors: ["forbidden"],
})

export const LastResortBody = Strict({ keyPackage: EncodedKeyPackage })
export type LastResortBody = Static<typeof LastResortBody>

/** Sets (or replaces) the caller's last-resort KeyPackage for its ciphersuite. */
export const putLastResort = route({
  method: "PUT",
  path: "/v1/users/:username/keypackages/last-resort",
  auth: true,
  params: UserParams,
  body: LastResortBody,
  status: 200,
  response: UploadItemResult,
  errors: ["forbidden"],
})

export const KeyRefParams = Strict({ username: UserRef, ref: KeyPackageRef })
export type KeyRefParams = Static<typeof KeyRefParams>
export const WithdrawResult = Type.Object({ ref: KeyPackageRef, withdrawn: Type.Boolean() })

/** The owner withdraws an available KeyPackage (rotation); a reserved one answers keypackage_reserved. */
export const withdraw = route({
  method: "DELETE",
  path: "/v1/users/:username/keypackages/:ref",
  auth: true,
  params: KeyRefParams,
  body: undefined,
  status: 200,
  response: WithdrawResult,
  errors: ["forbidden", "keypackage_not_found", "keypackage_reserved", "already_spent"],
})

export const PoolHealth = Type.Union([
  Type.Literal("good"),
  Type.Literal("low"),
  Type.Literal("critical"),
  Type.Literal("exhausted"),
])
export type PoolHealth = Static<typeof PoolHealth>

export const StatusResult = Type.Object({
  /** Ordinary keys that can be reserved now. */
  available: Type.Integer(),
  /** Ordinary keys under an unexpired reservation. */
  reserved: Type.Integer(),
  /** Keys spent and not yet garbage-collected. */
  spent: Type.Integer(),
  /** Keys past not_after and not yet garbage-collected. */
  expired: Type.Integer(),
  /** Available keys whose not_after is less than 2 days away. */
  expiringSoon: Type.Integer(),
  lastUpload: Type.Union([TimestampMs, Type.Null()]),
  /** good >= 8 available, low 3..7, critical 1..2, exhausted 0 (the last-resort key does not count). */
  health: PoolHealth,
  lastResort: Type.Union([Type.Object({ ref: KeyPackageRef, notAfter: TimestampMs }), Type.Null()]),
  /** `refsDigest` of the refs of available and reserved ordinary keys, for reconciliation. */
  digest: Base64Url(),
})
export type StatusResult = Static<typeof StatusResult>

/**
 * SHA-256 (base64url) over the sorted refs joined by "\n": the server's `digest` of the keys it holds and the
 * daemon's of the keys it believes uploaded. Equal digests mean both sides hold the same keys.
 */
export function refsDigest(refs: readonly string[]): string {
  return toBase64Url(
    createHash("sha256")
      .update([...refs].sort().join("\n"))
      .digest(),
  )
}

export const status = route({
  method: "GET",
  path: "/v1/users/:username/keypackages/status",
  auth: true,
  params: UserParams,
  body: undefined,
  status: 200,
  response: StatusResult,
  errors: ["forbidden"],
})

export const RefsResult = Type.Object({
  available: Type.Array(KeyPackageRef),
  reserved: Type.Array(KeyPackageRef),
})
export type RefsResult = Static<typeof RefsResult>

/** The owner's refs held by the server (available and reserved), to repair a digest mismatch. */
export const refs = route({
  method: "GET",
  path: "/v1/users/:username/keypackages/refs",
  auth: true,
  params: UserParams,
  body: undefined,
  status: 200,
  response: RefsResult,
  errors: ["forbidden"],
})

export const ReserveBody = Strict({
  /** A handle or user id: one KeyPackage per active device of the account. A client id: that one device's. */
  target: UserOrClientRef,
  cipherSuite: Type.Optional(CipherSuiteId),
})
export type ReserveBody = Static<typeof ReserveBody>

/** One device's reserved KeyPackage. */
export const ReservedKeyPackage = Type.Object({
  deviceId: DeviceId,
  /** The device's client id: the identity the KeyPackage's credential carries. */
  clientId: MlsClientId,
  ref: KeyPackageRef,
  keyPackage: EncodedKeyPackage,
  /** This key's reservation: spent with it (by the Commit that consumes it, or `spend`). */
  reservationId: ReservationId,
  /** When the reservation lapses and the key returns to the pool. */
  expiresAt: TimestampMs,
  /** True when this is the device's last-resort key (not consumed by spending it). */
  lastResort: Type.Boolean(),
})
export type ReservedKeyPackage = Static<typeof ReservedKeyPackage>

export const ReserveResult = Type.Object({
  userId: UserId,
  handle: Username,
  /** One per active device that has a key of the ciphersuite, oldest device first; never empty. */
  keyPackages: Type.Array(ReservedKeyPackage, { minItems: 1 }),
  /** Active devices of the target with no key of the ciphersuite (none uploaded yet, or all taken). */
  missing: Type.Array(Type.Object({ deviceId: DeviceId, clientId: MlsClientId })),
  /** `keyPackages[0]`'s fields again, for clients from before devices (one device per user): */
  ref: KeyPackageRef,
  keyPackage: EncodedKeyPackage,
  reservationId: ReservationId,
  expiresAt: TimestampMs,
  lastResort: Type.Boolean(),
})
export type ReserveResult = Static<typeof ReserveResult>

/**
 * Takes, for the calling device and for the reservation TTL, the oldest valid available KeyPackage of each active
 * device of `target` (or of the one device a client id names), in one transaction; a device without one is listed in
 * `missing`. With no key at all: no_keypackage_available. Each key counts against the reservation budgets.
 */
export const reserve = route({
  method: "POST",
  path: "/v1/keypackages/reserve",
  auth: true,
  params: undefined,
  body: ReserveBody,
  status: 201,
  response: ReserveResult,
  errors: ["no_keypackage_available", "rate_limited", "unknown_user", "unknown_device"],
})

export const SpendBody = Strict({ ref: KeyPackageRef, reservationId: ReservationId })
export type SpendBody = Static<typeof SpendBody>
export const SpendResult = Type.Object({ ref: KeyPackageRef, spentAt: TimestampMs, lastResort: Type.Boolean() })
export type SpendResult = Static<typeof SpendResult>

/** Marks a reserved KeyPackage used; only the device holding that unexpired reservation may. */
export const spend = route({
  method: "POST",
  path: "/v1/keypackages/spend",
  auth: true,
  params: undefined,
  body: SpendBody,
  status: 200,
  response: SpendResult,
  errors: ["keypackage_not_found", "already_spent", "reservation_invalid", "reservation_expired", "forbidden"],
})
