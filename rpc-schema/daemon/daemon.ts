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
