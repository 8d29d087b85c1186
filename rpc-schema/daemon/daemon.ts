/** `daemon.*`: the daemon process itself. */
import { Type, type Static } from "@sinclair/typebox"
import { described, DeviceId, MlsClientId, Strict, TimestampMs, UserId, Username } from "../common.js"
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
    lastError: Type.Union(
      [
        Type.Object({
          code: described(Type.String(), "the stable snake_case error code"),
          message: described(Type.String(), "what went wrong, in one line"),
        }),
        Type.Null(),
      ],
      {
        description: "why the last attempt failed ({code, message}); null when it did not",
      },
    ),
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
  version: described(Type.String(), "The daemon's version (package.json)."),
  profile: described(Type.String(), "the profile this daemon serves"),
  pid: described(Type.Integer(), "the daemon's process id"),
  username: described(
    Type.Union([Username, Type.Null()]),
    "The account's handle, or null before `identity.register` / `identity.link`.",
  ),
  userId: described(Type.Union([UserId, Type.Null()]), "The account's user id; null until the server said it."),
  deviceId: described(Type.Union([DeviceId, Type.Null()]), "This device's id; null until the server said it."),
  clientId: described(
    Type.Union([MlsClientId, Type.Null()]),
    "This device's client id (its MLS credential identity); null until the server said it.",
  ),
  server: described(
    Type.Union([Type.String(), Type.Null()]),
    "The server URL of the identity (or of `--server` before registration); null when none is known.",
  ),
  connection: ConnectionState,
  registration: RegistrationStatus,
  startedAt: TimestampMs,
  uptimeMs: described(Type.Integer({ minimum: 0 }), "real milliseconds since the daemon started"),
  now: described(TimestampMs, "The daemon's clock; differs from the wall clock only under MLSD_TEST_CLOCK."),
  dataDir: described(Type.String(), "the profile's data directory"),
  socketPath: described(Type.String(), "the socket this daemon serves JSON-RPC on"),
})
export type DaemonStatusResult = Static<typeof DaemonStatusResult>

export const status = method({
  name: "daemon.status",
  summary: "version, profile, account and device, server, connection state, uptime",
  description:
    "Version, profile, account (handle, user id) and device (device id, client id), server, connection state and uptime.",
  params: DaemonStatusParams,
  result: DaemonStatusResult,
  errors: [],
})

export const DaemonReconnectParams = Strict({})
export type DaemonReconnectParams = Static<typeof DaemonReconnectParams>

export const reconnect = method({
  name: "daemon.reconnect",
  summary: "retry registration, the server stream, pool maintenance and the outbox now",
  description:
    "Retry now instead of waiting for the backoff: a pending registration, the server stream (and with it the login), a pool maintenance pass and the outbox. Answers at once with the status; `connection.changed` tells when the link is up.",
  params: DaemonReconnectParams,
  result: DaemonStatusResult,
  errors: [],
})
