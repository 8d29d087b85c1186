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
  /** The configured target: with `adaptive`, the least the daemon keeps available (`demand.target` is in force). */
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
  adaptive: Type.Boolean({
    description: "whether the target follows the measured demand (between `target` and `cap`), or stays at `target`",
  }),
  suspiciousLapses: Type.Integer({
    minimum: 0,
    description: "pool.suspicious fires when one requester lets more than this many reservations lapse in an hour",
  }),
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

/** Why the target in force is what it is. */
export const TargetReason = Type.Union(
  [Type.Literal("fixed"), Type.Literal("minimum"), Type.Literal("peak"), Type.Literal("rate"), Type.Literal("cap")],
  {
    description:
      "fixed: adaptive sizing is off; minimum: the demand needs no more than the configured target; peak: the " +
      "largest burst seen, with headroom; rate: the claims expected in one maintenance interval; cap: the demand " +
      "asks for more than the cap",
  },
)
export type TargetReason = Static<typeof TargetReason>

/** How fast the pool's keys are claimed, and the target that follows from it. */
export const PoolDemand = Type.Object(
  {
    reservationsPerHour: Type.Number({
      minimum: 0,
      description: "reservations of this profile's keys per hour, exponentially smoothed over about an hour",
    }),
    peakBurst: Type.Integer({
      minimum: 0,
      description:
        "the most reservations between two maintenance passes in the last 7 days: what a refill must outlast",
    }),
    peakAt: Type.Union([TimestampMs, Type.Null()], { description: "when that burst ended (a pass started)" }),
    target: Type.Integer({ minimum: 1, description: "the target in force: keys kept available" }),
    reason: TargetReason,
    why: Type.String({ description: "the reason in words, with the figures" }),
  },
  { description: "measured demand and the target in force" },
)
export type PoolDemand = Static<typeof PoolDemand>

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
  demand: PoolDemand,
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

export const PoolUsageParams = Strict({
  sinceMs: Type.Optional(
    Type.Integer({
      minimum: 0,
      description: "the window starts here (daemon clock, ms since the epoch); default 24 hours ago",
    }),
  ),
})
export type PoolUsageParams = Static<typeof PoolUsageParams>

/** What one requester did with this profile's keys in the window. */
export const RequesterUsage = Type.Object({
  username: Username,
  groupMate: Type.Boolean({ description: "whether the requester shares a group with this profile now" }),
  reserved: Type.Integer({ minimum: 0, description: "reservations of this profile's keys" }),
  spent: Type.Integer({ minimum: 0, description: "reservations that turned into a Welcome (the key was spent)" }),
  lapsed: Type.Integer({ minimum: 0, description: "reservations that lapsed unused (the key went back to the pool)" }),
  lastResort: Type.Integer({
    minimum: 0,
    description: "reservations that got the last-resort key (the pool was empty)",
  }),
  lastAt: Type.Integer({ minimum: 0, description: "the requester's latest key event in the window" }),
})
export type RequesterUsage = Static<typeof RequesterUsage>

export const PoolUsageResult = Type.Object({
  since: Type.Integer({ minimum: 0, description: "start of the window" }),
  until: Type.Integer({ minimum: 0, description: "end of the window (now)" }),
  requesters: Type.Array(RequesterUsage, { description: "one row per requester, most reservations first" }),
  total: Type.Object(
    {
      reserved: Type.Integer({ minimum: 0 }),
      spent: Type.Integer({ minimum: 0 }),
      lapsed: Type.Integer({ minimum: 0 }),
      byStrangers: Type.Integer({ minimum: 0, description: "reservations by requesters who share no group with us" }),
    },
    { description: "the sums over all requesters" },
  ),
})
export type PoolUsageResult = Static<typeof PoolUsageResult>

/**
 * Key-use transparency: who reserved this profile's KeyPackages in a window, how many of those reservations turned
 * into a Welcome and how many lapsed unused, per requester, from the key events the server sent (the server knows
 * who reserves already; this only shows the owner the same). Kept 30 days.
 */
export const usage = method({
  name: "pool.usage",
  summary: "who reserved, used and abandoned this profile's keys",
  description:
    "Per requester counts of reservations, spends (Welcomes) and lapsed reservations of this profile's KeyPackages " +
    "since `sinceMs` (default 24 h), from the key events the server sent; recorded for 30 days.",
  params: PoolUsageParams,
  result: PoolUsageResult,
  errors: ["not_registered"],
})
