/**
 * The human group name, shared with members only. It travels as a private-use GroupInfo extension
 * (RFC 9420 §17.3, 0xF000-0xFFFF) inside each Welcome, whose GroupInfo is encrypted to the joiners
 * (RFC 9420 §12.4.3), and is kept next to the MLS state. Not a GroupContext extension: every joiner's
 * KeyPackage would then have to list the type in its capabilities (RFC 9420 §12.1.1), and handshake
 * messages that change it would travel as PublicMessage. Not an application message: joiners cannot
 * read messages of epochs before their own.
 */
import type { Extension } from "ts-mls"
import { GroupError } from "./groupError.js"

export const groupNameExtensionType = 0xf3c1

/** Longest name in UTF-8 bytes. */
export const maxGroupNameBytes = 256

const utf8 = new TextDecoder("utf-8", { fatal: true })

/** The name as UTF-8, or an invalid_name error. */
export function encodeGroupName(name: string): Uint8Array {
  const bytes = new TextEncoder().encode(name)
  if (name.trim() === "" || bytes.length > maxGroupNameBytes)
    throw new GroupError("invalid_name", `group name must be 1..${maxGroupNameBytes} UTF-8 bytes and not blank`)
  return bytes
}

export function decodeGroupName(bytes: Uint8Array): string {
  if (bytes.length > maxGroupNameBytes) throw new GroupError("malformed_message", "group name too long")
  try {
    return utf8.decode(bytes)
  } catch {
    throw new GroupError("malformed_message", "group name is not UTF-8")
  }
}

export function groupNameExtension(name: string): Extension {
  return { extensionType: groupNameExtensionType, extensionData: encodeGroupName(name) }
}

/** The name a Welcome's GroupInfo carries; "" when the inviter (another MLS client) sent none. */
export function groupNameFromExtensions(extensions: Extension[]): string {
  const ext = extensions.find((e) => e.extensionType === groupNameExtensionType)
  return ext === undefined ? "" : decodeGroupName(ext.extensionData)
}
