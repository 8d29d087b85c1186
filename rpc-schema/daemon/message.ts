/** `message.*`: text messages of a group, encrypted by MLS, and this profile's history of them. */
import { Type, type Static } from "@sinclair/typebox"
import { Strict, TimestampMs, Username } from "../common.js"
import { GroupRef } from "./group.js"
import { method } from "./method.js"

/** Most characters one message carries (its MLS encoding stays well under the server's 256 KiB). */
export const maxTextLength = 16_384

export const MessageSendParams = Strict({
  group: GroupRef,
  text: Type.String({ minLength: 1, maxLength: maxTextLength }),
})
export type MessageSendParams = Static<typeof MessageSendParams>

export const StoredMessage = Type.Object({
  groupId: Type.String(),
  /** The message's position in the group log (the server's seq). */
  seq: Type.Integer({ minimum: 1 }),
  sender: Username,
  text: Type.String(),
  /** When the server stored it. */
  sentAt: TimestampMs,
  /** When this daemon stored it. */
  receivedAt: TimestampMs,
  /** Sent by this profile. */
  own: Type.Boolean(),
})
export type StoredMessage = Static<typeof StoredMessage>

export const MessageSendResult = Type.Object({
  /**
   * `sent`: the server stored it (`seq`, `sentAt`, `receivedAt` are set, and it is in the history). `queued`: it is
   * encrypted and kept in the outbox because the server cannot be reached now; the daemon posts it when it can,
   * exactly once, and it enters the history then.
   */
  state: Type.Union([Type.Literal("sent"), Type.Literal("queued")]),
  /** The post's idempotency id (16 bytes, base64url): the server stores one message per id. */
  clientId: Type.String(),
  groupId: Type.String(),
  sender: Username,
  text: Type.String(),
  own: Type.Literal(true),
  seq: Type.Optional(Type.Integer({ minimum: 1 })),
  sentAt: Type.Optional(TimestampMs),
  receivedAt: Type.Optional(TimestampMs),
  /** Why it is queued. */
  error: Type.Optional(Type.String()),
})
export type MessageSendResult = Static<typeof MessageSendResult>

/**
 * Encrypts a text message and posts it through the outbox: the message and the group state are stored before
 * posting, so a crash never loses nor doubles it. Answers once the server took it (`sent`), or at once with `queued`
 * when the server cannot be reached (it is posted later).
 */
export const send = method({
  name: "message.send",
  summary: "send a text message to a group",
  params: MessageSendParams,
  result: MessageSendResult,
  errors: [
    "not_registered",
    "empty_message",
    "not_found",
    "conflict",
    "not_member",
    "group_out_of_sync",
    "epoch_conflict",
    "rate_limited",
    "server_unreachable",
  ],
})

export const MessageListParams = Strict({
  group: GroupRef,
  /** Only messages with a seq below this one (paging backwards). */
  before: Type.Optional(Type.Integer({ minimum: 1 })),
  /** At most this many, the newest ones (default 50). */
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })),
})
export type MessageListParams = Static<typeof MessageListParams>
export const MessageListResult = Type.Object({
  /** Oldest first. */
  messages: Type.Array(StoredMessage),
  /** Whether older messages exist (page on with `before` = the first seq). */
  more: Type.Boolean(),
  /** Own messages in the outbox, not yet taken by the server, oldest first (not paged). */
  queued: Type.Array(Type.Object({ clientId: Type.String(), text: Type.String(), createdAt: TimestampMs })),
})
export type MessageListResult = Static<typeof MessageListResult>

/** A group's history, newest page first by `before`, each page oldest first. */
export const list = method({
  name: "message.list",
  summary: "message history of a group",
  params: MessageListParams,
  result: MessageListResult,
  errors: ["not_found", "conflict"],
})
