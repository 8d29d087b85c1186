/**
 * Notifications the daemon sends to subscribed connections. Each carries `eventId`: events are recorded durably,
 * and `events.subscribe {since}` replays the ones after that id first, so nothing is lost while no frontend listens.
 */
import { Type, type Static } from "@sinclair/typebox"
import { ConnectionState } from "./daemon.js"
import { notification } from "./method.js"
import { PoolStatusResult } from "./pool.js"

export const EventId = Type.Integer({ minimum: 1, description: "durable event id, increasing" })

export const PoolChangedParams = Type.Object({
  eventId: EventId,
  /** What changed: `maintenance` (a pass finished), `reserved`, `spent`, `low` (the server said so). */
  reason: Type.String(),
  status: PoolStatusResult,
})
export type PoolChangedParams = Static<typeof PoolChangedParams>

/** The pool changed: a maintenance pass ended (successfully or not) or the server reported a reservation. */
export const poolChanged = notification({
  name: "pool.changed",
  summary: "the KeyPackage pool changed",
  params: PoolChangedParams,
})

export const ConnectionChangedParams = Type.Object({
  eventId: EventId,
  state: ConnectionState,
  server: Type.Union([Type.String(), Type.Null()]),
  /** Why the link is down, when it is. */
  error: Type.Union([Type.String(), Type.Null()]),
})
export type ConnectionChangedParams = Static<typeof ConnectionChangedParams>

/** The link to the server went up or down. */
export const connectionChanged = notification({
  name: "connection.changed",
  summary: "the link to the server went up or down",
  params: ConnectionChangedParams,
})
