/** `events.*`: notifications on this connection. */
import { Type, type Static } from "@sinclair/typebox"
import { described, Strict } from "../common.js"
import { method } from "./method.js"

/** A notification name (see notifications.ts). */
export const EventName = Type.Union([
  Type.Literal("pool.changed"),
  Type.Literal("connection.changed"),
  Type.Literal("message.received"),
  Type.Literal("message.refused"),
  Type.Literal("group.joined"),
  Type.Literal("group.updated"),
  Type.Literal("invite.failed"),
  Type.Literal("invite.received"),
  Type.Literal("credential.refused"),
  Type.Literal("group.historyLost"),
  Type.Literal("invites.expired"),
  Type.Literal("pool.suspicious"),
  Type.Literal("device.added"),
])
export type EventName = Static<typeof EventName>

export const EventsSubscribeParams = Strict({
  events: described(
    Type.Optional(Type.Array(EventName, { minItems: 1, uniqueItems: true })),
    "Which notifications; all when omitted.",
  ),
  after: described(
    Type.Optional(Type.Integer({ minimum: 0 })),
    "Replay the recorded events after this id before live ones (the last `eventId` this frontend saw).",
  ),
})
export type EventsSubscribeParams = Static<typeof EventsSubscribeParams>
export const EventsSubscribeResult = Type.Object({
  events: described(Type.Array(EventName), "the notifications this connection now receives"),
  lastEventId: described(
    Type.Integer({ minimum: 0 }),
    "The newest recorded event id at subscription time (0 when none).",
  ),
  replayed: described(
    Type.Integer({ minimum: 0 }),
    "How many recorded events were replayed (sent right after this answer).",
  ),
})
export type EventsSubscribeResult = Static<typeof EventsSubscribeResult>

export const subscribe = method({
  name: "events.subscribe",
  summary: "start notifications on this connection",
  description: "Starts notifications on this connection (replacing an earlier subscription's event list).",
  params: EventsSubscribeParams,
  result: EventsSubscribeResult,
  errors: [],
})

export const EventsUnsubscribeParams = Strict({})
export type EventsUnsubscribeParams = Static<typeof EventsUnsubscribeParams>
export const EventsUnsubscribeResult = Type.Object({
  subscribed: described(Type.Literal(false), "always false: no notifications on this connection now"),
})

export const unsubscribe = method({
  name: "events.unsubscribe",
  summary: "stop notifications on this connection",
  description: "Stops notifications on this connection.",
  params: EventsUnsubscribeParams,
  result: EventsUnsubscribeResult,
  errors: [],
})
