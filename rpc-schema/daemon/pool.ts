/** `pool.*`: the profile's KeyPackage pool (DESIGN §3). */
import { Type, type Static } from "@sinclair/typebox"
import { CipherSuiteId, described, KeyPackageRef, Strict, TimestampMs, Username } from "../common.js"
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
  lastResort: described(
    Type.Boolean(),
    "The one last-resort key (RFC 9750 practice): handed out when no ordinary key is left, never consumed.",
  ),
  createdAt: TimestampMs,
  uploadedAt: described(Type.Union([TimestampMs, Type.Null()]), "when the server took it; null before"),
  reservedAt: described(Type.Union([TimestampMs, Type.Null()]), "when an inviter reserved it; null if never"),
  reservedBy: described(Type.Union([Username, Type.Null()]), "Who reserved it, when the server said so."),
  spentAt: described(Type.Union([TimestampMs, Type.Null()]), "when it was spent on an invitation; null if not"),
  consumedAt: described(Type.Union([TimestampMs, Type.Null()]), "when a Welcome used it; null if not"),
  notAfter: TimestampMs,
  hasPrivateKey: described(
    Type.Boolean(),
    "Whether the private part is still in the store (kept until notAfter plus the grace period).",
  ),
  attempts: described(Type.Integer({ minimum: 0 }), "Upload attempts that failed so far, and the last failure."),
  lastError: described(
    Type.Union([Type.String(), Type.Null()]),
    "why the last upload of this key failed; null when none did",
  ),
})
export type KeyInfo = Static<typeof KeyInfo>

/** The pool policy in force (DESIGN §3 defaults: 32 / 8 / 64 / 14 days / 2 days / 24 h). */
export const PoolPolicy = Type.Object({
  target: described(Type.Integer({ minimum: 1 }), "keys kept available"),
  lowWatermark: described(Type.Integer({ minimum: 0 }), "below this many available keys the pool is low"),
  cap: described(Type.Integer({ minimum: 1 }), "Most ordinary keys on the server, reserved ones included."),
  lifetimeMs: described(Type.Integer({ minimum: 1 }), "lifetime of a new KeyPackage"),
  rotateBeforeMs: described(Type.Integer({ minimum: 0 }), "Keys this close to not_after are withdrawn and replaced."),
  graceMs: described(Type.Integer({ minimum: 0 }), "Private parts are kept this long past not_after."),
  lastResort: described(Type.Boolean(), "whether a last-resort key is kept"),
  maintenanceIntervalMs: described(Type.Integer({ minimum: 1 }), "time between timer-driven maintenance passes"),
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

export const PassError = Type.Object({
  code: described(Type.String(), "the stable snake_case error code"),
  message: described(Type.String(), "what went wrong, in one line"),
  at: described(TimestampMs, "when it failed (daemon clock)"),
})

export const PoolStatusResult = Type.Object({
  available: described(Type.Integer(), "Ordinary keys the daemon believes available on the server."),
  reserved: described(Type.Integer(), "keys reserved by an inviter and not spent yet"),
  spent: described(Type.Integer(), "Ordinary keys spent or gone from the server whose private part is still kept."),
  expired: described(Type.Integer(), "Keys past not_after or withdrawn by rotation whose private part is still kept."),
  expiringSoon: described(Type.Integer(), "Available keys whose not_after is less than 2 days away."),
  lastUpload: described(Type.Union([TimestampMs, Type.Null()]), "when keys were last uploaded; null if never"),
  health: described(
    PoolHealth,
    "Computed from `available` as the server does; `degraded` when the last pass failed (figures unconfirmed).",
  ),
  lastResort: described(
    Type.Union([Type.Object({ ref: KeyPackageRef, notAfter: TimestampMs }), Type.Null()]),
    "the last-resort key on the server ({ref, notAfter}); null when none",
  ),
  digest: described(
    Type.String(),
    "`refsDigest` of the available and reserved refs: equal to the server's when both agree.",
  ),
  created: described(
    Type.Integer(),
    "Keys persisted but not accepted by the server yet, and keys the server rejected.",
  ),
  consumed: described(Type.Integer(), "keys a Welcome used"),
  failed: described(Type.Integer(), "keys the server rejected"),
  synced: described(
    Type.Boolean(),
    "Whether the last successful pass found the server's digest equal to the daemon's.",
  ),
  running: described(Type.Boolean(), "A maintenance pass is running now."),
  lastPass: described(
    Type.Union([
      Type.Object({
        startedAt: described(TimestampMs, "when the pass started"),
        finishedAt: described(TimestampMs, "when it ended"),
        ok: described(Type.Boolean(), "whether it succeeded"),
        generated: described(Type.Integer(), "keys it generated"),
        uploaded: described(Type.Integer(), "keys it uploaded"),
        withdrawn: described(Type.Integer(), "keys it withdrew from the server"),
      }),
      Type.Null(),
    ]),
    "the last maintenance pass; null before the first",
  ),
  lastError: described(Type.Union([PassError, Type.Null()]), "The failure of the last pass, if it failed."),
  consecutiveFailures: described(Type.Integer({ minimum: 0 }), "failed passes in a row"),
  nextRetryAt: described(
    Type.Union([TimestampMs, Type.Null()]),
    "When the next retry after a failure is due (daemon clock).",
  ),
  policy: described(PoolPolicy, "the maintenance policy in force (flags --pool-*)"),
})
export type PoolStatusResult = Static<typeof PoolStatusResult>

export const PoolStatusParams = Strict({})
export type PoolStatusParams = Static<typeof PoolStatusParams>

export const status = method({
  name: "pool.status",
  summary: "pool health and figures",
  description: "Pool health and figures, from the daemon's store (no server round trip).",
  params: PoolStatusParams,
  result: PoolStatusResult,
  errors: ["not_registered"],
})

export const PoolListParams = Strict({
  state: described(Type.Optional(KeyState), "Only keys in this state."),
  limit: described(Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })), "at most this many keys (default all)"),
})
export type PoolListParams = Static<typeof PoolListParams>
export const PoolListResult = Type.Object({ keys: described(Type.Array(KeyInfo), "the keys, oldest first") })
export type PoolListResult = Static<typeof PoolListResult>

export const list = method({
  name: "pool.list",
  summary: "keys by state",
  description: "The keys of the pool, oldest first (never the private parts).",
  params: PoolListParams,
  result: PoolListResult,
  errors: ["not_registered"],
})

export const PoolRefreshParams = Strict({})
export type PoolRefreshParams = Static<typeof PoolRefreshParams>

export const refresh = method({
  name: "pool.refresh",
  summary: "force a maintenance pass",
  description:
    "Forces a maintenance pass and answers with the status after it. Joins a pass that is running and then runs a fresh one, so the answer reflects everything before the call. Other calls are served meanwhile.",
  params: PoolRefreshParams,
  result: PoolStatusResult,
  errors: ["not_registered"],
})
