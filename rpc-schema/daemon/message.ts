/** `message.*`: text messages of a group, encrypted by MLS, and this profile's history of them. */
import { Type, type Static } from "@sinclair/typebox"
import { described, DeviceId, Strict, TimestampMs, Username } from "../common.js"
import { GroupRef } from "./group.js"
import { method } from "./method.js"

/** Most characters one message carries (its MLS encoding stays well under the server's 256 KiB). */
export const maxTextLength = 16_384

export const MessageSendParams = Strict({
  group: GroupRef,
  text: described(
    Type.String({ minLength: 1, maxLength: maxTextLength }),
    "the message text; not empty and not only white space (empty_message)",
  ),
})
export type MessageSendParams = Static<typeof MessageSendParams>

export const StoredMessage = Type.Object({
  groupId: described(Type.String(), "MLS group id, base64url"),
  seq: described(Type.Integer({ minimum: 1 }), "The message's position in the group log (the server's seq)."),
  sender: described(Username, "the sending user's handle"),
  senderDevice: described(
    Type.Union([DeviceId, Type.Null()]),
    "the sending device's id; null for messages stored before devices",
  ),
  text: described(Type.String(), "the message text"),
  sentAt: described(TimestampMs, "When the server stored it."),
  receivedAt: described(TimestampMs, "When this daemon stored it."),
  own: described(Type.Boolean(), "Sent by this device (another device of this account is not `own`)."),
})
export type StoredMessage = Static<typeof StoredMessage>

export const MessageSendResult = Type.Object({
  state: described(
    Type.Union([Type.Literal("sent"), Type.Literal("queued")]),
    "`sent`: the server stored it (`seq`, `sentAt`, `receivedAt` are set, and it is in the history). `queued`: it is encrypted and kept in the outbox because the server cannot be reached now; the daemon posts it when it can, exactly once, and it enters the history then.",
  ),
  clientId: described(
    Type.String(),
    "The post's idempotency id (16 bytes, base64url): the server stores one message per id.",
  ),
  groupId: described(Type.String(), "MLS group id, base64url"),
  sender: described(Username, "this account's handle"),
  senderDevice: described(Type.Union([DeviceId, Type.Null()]), "this device's id"),
  text: described(Type.String(), "the message text as sent"),
  own: described(Type.Literal(true), "always true: this profile's own message"),
  seq: described(Type.Optional(Type.Integer({ minimum: 1 })), "its position in the group log, once sent"),
  sentAt: described(Type.Optional(TimestampMs), "when the server stored it, once sent"),
  receivedAt: described(Type.Optional(TimestampMs), "when this daemon stored it, once sent"),
  error: described(Type.Optional(Type.String()), "Why it is queued."),
})
export type MessageSendResult = Static<typeof MessageSendResult>

export const send = method({
  name: "message.send",
  summary: "send a text message to a group",
  description:
    "Encrypts a text message and posts it through the outbox: the message and the group state are stored before posting, so a crash never loses nor doubles it. Answers once the server took it (`sent`), or at once with `queued` when the server cannot be reached (it is posted later).",
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
  before: described(
    Type.Optional(Type.Integer({ minimum: 1 })),
    "Only messages with a seq below this one (paging backwards).",
  ),
  limit: described(
    Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })),
    "At most this many, the newest ones (default 50).",
  ),
})
export type MessageListParams = Static<typeof MessageListParams>
export const MessageListResult = Type.Object({
  messages: described(Type.Array(StoredMessage), "Oldest first."),
  more: described(Type.Boolean(), "Whether older messages exist (page on with `before` = the first seq)."),
  queued: described(
    Type.Array(
      Type.Object({
        clientId: described(Type.String(), "the post's idempotency id"),
        text: described(Type.String(), "the message text"),
        createdAt: described(TimestampMs, "when it was queued"),
      }),
    ),
    "Own messages in the outbox, not yet taken by the server, oldest first (not paged).",
  ),
})
export type MessageListResult = Static<typeof MessageListResult>

export const list = method({
  name: "message.list",
  summary: "message history of a group",
  description: "A group's history, newest page first by `before`, each page oldest first.",
  params: MessageListParams,
  result: MessageListResult,
  errors: ["not_found", "conflict"],
})
