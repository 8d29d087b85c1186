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
  target: described(
    Type.Integer({ minimum: 1 }),
    "The configured target: with `adaptive`, the least the daemon keeps available (`demand.target` is in force).",
  ),
  lowWatermark: described(Type.Integer({ minimum: 0 }), "below this many available keys the pool is low"),
  cap: described(Type.Integer({ minimum: 1 }), "Most ordinary keys on the server, reserved ones included."),
  lifetimeMs: described(Type.Integer({ minimum: 1 }), "lifetime of a new KeyPackage"),
  rotateBeforeMs: described(Type.Integer({ minimum: 0 }), "Keys this close to not_after are withdrawn and replaced."),
  graceMs: described(Type.Integer({ minimum: 0 }), "Private parts are kept this long past not_after."),
  lastResort: described(Type.Boolean(), "whether a last-resort key is kept"),
  maintenanceIntervalMs: described(Type.Integer({ minimum: 1 }), "time between timer-driven maintenance passes"),
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
  demand: described(PoolDemand, "measured demand and the target in force"),
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
      reserved: Type.Integer({ minimum: 0, description: "reservations of this profile's keys in the window" }),
      spent: Type.Integer({ minimum: 0, description: "reservations that turned into a Welcome (spent)" }),
      lapsed: Type.Integer({ minimum: 0, description: "reservations that lapsed unused" }),
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
