/**
 * What the delivery service reads of an MLSMessage: only the cleartext framing (RFC 9420 §6.2,
 * §6.3): group id, epoch, content type. It never decrypts and never verifies signatures: the
 * members do that.
 */
import type { ContentTypeName } from "ts-mls"
import { decodeMlsMessage } from "ts-mls/message.js"
import { AppError } from "../../rpc-schema/errors.js"

export interface Framing {
  groupId: Uint8Array
  epoch: number
  contentType: ContentTypeName
}

function decode(bytes: Uint8Array) {
  let decoded
  try {
    decoded = decodeMlsMessage(bytes, 0)
  } catch {
    decoded = undefined
  }
  if (!decoded || decoded[1] !== bytes.length) throw new AppError("malformed_message", "not a well-formed MLSMessage")
  return decoded[0]
}

/** The framing of a PublicMessage or PrivateMessage; anything else is malformed_message. */
export function readFraming(bytes: Uint8Array): Framing {
  const m = decode(bytes)
  let f: { groupId: Uint8Array; epoch: bigint; contentType: ContentTypeName }
  if (m.wireformat === "mls_public_message") f = m.publicMessage.content
  else if (m.wireformat === "mls_private_message") f = m.privateMessage
  else throw new AppError("malformed_message", `expected a PublicMessage or PrivateMessage, not ${m.wireformat}`)
  if (f.epoch > BigInt(Number.MAX_SAFE_INTEGER)) throw new AppError("malformed_message", "epoch out of range")
  return { groupId: f.groupId, epoch: Number(f.epoch), contentType: f.contentType }
}

/** Checks that `bytes` is one Welcome MLSMessage (RFC 9420 §12.4.3.1). */
export function checkWelcome(bytes: Uint8Array): void {
  const m = decode(bytes)
  if (m.wireformat !== "mls_welcome") throw new AppError("malformed_message", `expected a Welcome, not ${m.wireformat}`)
}
