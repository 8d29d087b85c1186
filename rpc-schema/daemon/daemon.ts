/** `daemon.*`: the daemon process itself. */
import { Type, type Static } from "@sinclair/typebox"
import { Strict, TimestampMs, Username } from "../common.js"
import { method } from "./method.js"

/**
 * The daemon's link to its server: `offline` (no identity yet, so no server), `connecting`, `connected` (the
 * last request or the stream succeeded), `disconnected` (the server could not be reached; retrying).
 */
export const ConnectionState = Type.Union(
  [Type.Literal("offline"), Type.Literal("connecting"), Type.Literal("connected"), Type.Literal("disconnected")],
  { description: "offline | connecting | connected | disconnected" },
)
export type ConnectionState = Static<typeof ConnectionState>

/**
 * First-run registration as the daemon runs it: `unregistered` (no name given yet), `registering` (an attempt is
 * running), `waiting` (the server could not be reached: retried by itself with backoff, or now by `daemon.reconnect`),
 * `registered`, `failed` (the server refused, e.g. `username_taken`: not retried; call `identity.register` again).
 */
export const RegistrationState = Type.Union(
  [
    Type.Literal("unregistered"),
    Type.Literal("registering"),
    Type.Literal("waiting"),
    Type.Literal("registered"),
    Type.Literal("failed"),
  ],
  { description: "unregistered | registering | waiting | registered | failed" },
)
export type RegistrationState = Static<typeof RegistrationState>

export const RegistrationStatus = Type.Object(
  {
    state: RegistrationState,
    username: Type.Union([Username, Type.Null()], {
      description: "the name registered or being registered; null while unregistered",
    }),
    attempts: Type.Integer({ minimum: 0, description: "failed attempts since the last success or new name" }),
    lastError: Type.Union([Type.Object({ code: Type.String(), message: Type.String() }), Type.Null()], {
      description: "why the last attempt failed ({code, message}); null when it did not",
    }),
    nextRetryAt: Type.Union([TimestampMs, Type.Null()], {
      description: "when the next attempt runs by itself while `waiting`; null otherwise",
    }),
  },
  { description: "first-run registration: its state, and the retry while the server cannot be reached" },
)
export type RegistrationStatus = Static<typeof RegistrationStatus>

export const DaemonStatusParams = Strict({})
export type DaemonStatusParams = Static<typeof DaemonStatusParams>
export const DaemonStatusResult = Type.Object({
  /** The daemon's version (package.json). */
  version: Type.String(),
  profile: Type.String(),
  pid: Type.Integer(),
  /** The registered user, or null before `identity.register`. */
  username: Type.Union([Username, Type.Null()]),
  /** The server URL of the identity (or of `--server` before registration); null when none is known. */
  server: Type.Union([Type.String(), Type.Null()]),
  connection: ConnectionState,
  registration: RegistrationStatus,
  startedAt: TimestampMs,
  uptimeMs: Type.Integer({ minimum: 0 }),
  /** The daemon's clock; differs from the wall clock only under MLSD_TEST_CLOCK. */
  now: TimestampMs,
  dataDir: Type.String(),
  socketPath: Type.String(),
})
export type DaemonStatusResult = Static<typeof DaemonStatusResult>

/** Version, profile, user, server, connection state and uptime. */
export const status = method({
  name: "daemon.status",
  summary: "version, profile, user, server, connection state, uptime",
  params: DaemonStatusParams,
  result: DaemonStatusResult,
  errors: [],
})

export const DaemonReconnectParams = Strict({})
export type DaemonReconnectParams = Static<typeof DaemonReconnectParams>

/**
 * Retry now instead of waiting for the backoff: a pending registration, the server stream (and with it the login), a
 * pool maintenance pass and the outbox. Answers at once with the status; `connection.changed` tells when the link is up.
 */
export const reconnect = method({
  name: "daemon.reconnect",
  summary: "retry registration, the server stream, pool maintenance and the outbox now",
  params: DaemonReconnectParams,
  result: DaemonStatusResult,
  errors: [],
})
