/** `pool.*`: the profile's KeyPackage pool (DESIGN §3). */
import { Type, type Static } from "@sinclair/typebox"
import { CipherSuiteId, KeyPackageRef, Strict, TimestampMs, Username } from "../common.js"
import { method } from "./method.js"

/**
 * A key's lifecycle: `created` (persisted, not yet accepted by the server) -> `available` (on the server) ->
 * `reserved` -> `spent` (the server no longer holds it: someone may add us with it) -> `consumed` (a Welcome used
 * it); or `expired` (past not_after, or withdrawn by rotation) / `failed` (the server rejected it).
 */
export const KeyState = Type.Union(
  [
    Type.Literal("created"),
    Type.Literal("available"),
    Type.Literal("reserved"),
    Type.Literal("spent"),
    Type.Literal("consumed"),
    Type.Literal("expired"),
    Type.Literal("failed"),
  ],
  { description: "created | available | reserved | spent | consumed | expired | failed" },
)
export type KeyState = Static<typeof KeyState>

export const KeyInfo = Type.Object({
  ref: KeyPackageRef,
  state: KeyState,
  cipherSuite: CipherSuiteId,
  /** The one last-resort key (RFC 9750 practice): handed out when no ordinary key is left, never consumed. */
  lastResort: Type.Boolean(),
  createdAt: TimestampMs,
  uploadedAt: Type.Union([TimestampMs, Type.Null()]),
  reservedAt: Type.Union([TimestampMs, Type.Null()]),
  /** Who reserved it, when the server said so. */
  reservedBy: Type.Union([Username, Type.Null()]),
  spentAt: Type.Union([TimestampMs, Type.Null()]),
  consumedAt: Type.Union([TimestampMs, Type.Null()]),
  notAfter: TimestampMs,
  /** Whether the private part is still in the store (kept until notAfter plus the grace period). */
  hasPrivateKey: Type.Boolean(),
  /** Upload attempts that failed so far, and the last failure. */
  attempts: Type.Integer({ minimum: 0 }),
  lastError: Type.Union([Type.String(), Type.Null()]),
})
export type KeyInfo = Static<typeof KeyInfo>

/** The pool policy in force (DESIGN §3 defaults: 32 / 8 / 64 / 14 days / 2 days / 24 h). */
export const PoolPolicy = Type.Object({
  target: Type.Integer({ minimum: 1 }),
  lowWatermark: Type.Integer({ minimum: 0 }),
  /** Most ordinary keys on the server, reserved ones included. */
  cap: Type.Integer({ minimum: 1 }),
  lifetimeMs: Type.Integer({ minimum: 1 }),
  /** Keys this close to not_after are withdrawn and replaced. */
  rotateBeforeMs: Type.Integer({ minimum: 0 }),
  /** Private parts are kept this long past not_after. */
  graceMs: Type.Integer({ minimum: 0 }),
  lastResort: Type.Boolean(),
  maintenanceIntervalMs: Type.Integer({ minimum: 1 }),
})
export type PoolPolicy = Static<typeof PoolPolicy>

/**
 * good / low / critical / exhausted by the server's rule (good >= low watermark available, low 3.., critical 1..2,
 * exhausted 0); `degraded` when the last maintenance pass failed.
 */
export const PoolHealth = Type.Union(
  [
    Type.Literal("good"),
    Type.Literal("low"),
    Type.Literal("critical"),
    Type.Literal("exhausted"),
    Type.Literal("degraded"),
  ],
  { description: "good | low | critical | exhausted | degraded" },
)
export type PoolHealth = Static<typeof PoolHealth>

export const PassError = Type.Object({ code: Type.String(), message: Type.String(), at: TimestampMs })

export const PoolStatusResult = Type.Object({
  /** Ordinary keys the daemon believes available on the server. */
  available: Type.Integer(),
  reserved: Type.Integer(),
  /** Ordinary keys spent or gone from the server whose private part is still kept. */
  spent: Type.Integer(),
  /** Keys past not_after or withdrawn by rotation whose private part is still kept. */
  expired: Type.Integer(),
  /** Available keys whose not_after is less than 2 days away. */
  expiringSoon: Type.Integer(),
  lastUpload: Type.Union([TimestampMs, Type.Null()]),
  /** Computed from `available` as the server does; `degraded` when the last pass failed (figures unconfirmed). */
  health: PoolHealth,
  lastResort: Type.Union([Type.Object({ ref: KeyPackageRef, notAfter: TimestampMs }), Type.Null()]),
  /** `refsDigest` of the available and reserved refs: equal to the server's when both agree. */
  digest: Type.String(),
  /** Keys persisted but not accepted by the server yet, and keys the server rejected. */
  created: Type.Integer(),
  consumed: Type.Integer(),
  failed: Type.Integer(),
  /** Whether the last successful pass found the server's digest equal to the daemon's. */
  synced: Type.Boolean(),
  /** A maintenance pass is running now. */
  running: Type.Boolean(),
  lastPass: Type.Union([
    Type.Object({
      startedAt: TimestampMs,
      finishedAt: TimestampMs,
      ok: Type.Boolean(),
      generated: Type.Integer(),
      uploaded: Type.Integer(),
      withdrawn: Type.Integer(),
    }),
    Type.Null(),
  ]),
  /** The failure of the last pass, if it failed. */
  lastError: Type.Union([PassError, Type.Null()]),
  consecutiveFailures: Type.Integer({ minimum: 0 }),
  /** When the next retry after a failure is due (daemon clock). */
  nextRetryAt: Type.Union([TimestampMs, Type.Null()]),
  policy: PoolPolicy,
})
export type PoolStatusResult = Static<typeof PoolStatusResult>

export const PoolStatusParams = Strict({})
export type PoolStatusParams = Static<typeof PoolStatusParams>

/** Pool health and figures, from the daemon's store (no server round trip). */
export const status = method({
  name: "pool.status",
  summary: "pool health and figures",
  params: PoolStatusParams,
  result: PoolStatusResult,
  errors: ["not_registered"],
})

export const PoolListParams = Strict({
  /** Only keys in this state. */
  state: Type.Optional(KeyState),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
})
export type PoolListParams = Static<typeof PoolListParams>
export const PoolListResult = Type.Object({ keys: Type.Array(KeyInfo) })
export type PoolListResult = Static<typeof PoolListResult>

/** The keys of the pool, oldest first (never the private parts). */
export const list = method({
  name: "pool.list",
  summary: "keys by state",
  params: PoolListParams,
  result: PoolListResult,
  errors: ["not_registered"],
})

export const PoolRefreshParams = Strict({})
export type PoolRefreshParams = Static<typeof PoolRefreshParams>

/**
 * Forces a maintenance pass and answers with the status after it. Joins a pass that is running and then runs a
 * fresh one, so the answer reflects everything before the call. Other calls are served meanwhile.
 */
export const refresh = method({
  name: "pool.refresh",
  summary: "force a maintenance pass",
  params: PoolRefreshParams,
  result: PoolStatusResult,
  errors: ["not_registered"],
})
