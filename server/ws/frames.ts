/**
 * Serialises server → client frames (rpc-schema/server/ws.ts) by hand: an entry frame is built
 * once per entry and the same bytes go to every subscriber.
 */
import { toBase64Url } from "../../rpc-schema/common.js"
import type { LogEntry } from "../../rpc-schema/server/http/groups.js"
import type { ErrorCode } from "../../rpc-schema/errors.js"
import type { ExpiredReport, StoredEntry, StoredInboxItem } from "../store/types.js"

export function toLogEntry(e: StoredEntry): LogEntry {
  return {
    groupId: e.groupId,
    seq: e.seq,
    epoch: e.epoch,
    kind: e.kind,
    sender: e.sender.handle,
    senderClientId: e.sender.clientId,
    message: toBase64Url(e.data),
    receivedAt: e.receivedAt,
  }
}

export const entryFrame = (e: StoredEntry): string => JSON.stringify({ type: "entry", ...toLogEntry(e) })

// The stored item is the wire InboxItem as JSON already: no parse and re-serialise.
export const inboxFrame = (i: StoredInboxItem): string =>
  `{"type":"inbox","id":${i.id},"item":${i.item},"createdAt":${i.createdAt}}`

export const caughtUpFrame = (groups: { groupId: string; seq: number }[], inbox: number): string =>
  JSON.stringify({ type: "caughtUp", groups, inbox })

export const prunedFrame = (groupId: string, after: number, prunedThrough: number): string =>
  JSON.stringify({ type: "pruned", groupId, after, prunedThrough })

export const inboxExpiredFrame = (e: ExpiredReport): string =>
  JSON.stringify({ type: "inboxExpired", count: e.count, through: e.through })

export const errorFrame = (code: ErrorCode, message: string, groupId?: string): string =>
  JSON.stringify({ type: "error", code, message, ...(groupId !== undefined && { groupId }) })
