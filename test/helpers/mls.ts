/**
 * MLSMessage bytes for delivery tests: real framing with random content. The server reads only the
 * framing (group id, epoch, content type), so these stand in for real messages in load tests.
 */
import { randomBytes } from "node:crypto"
import type { ContentTypeName } from "ts-mls"
import { encodeMlsMessage } from "ts-mls/message.js"
import { toBase64Url } from "../../rpc-schema/common.js"

/** A PrivateMessage for `groupId` at `epoch` with `size` bytes of random ciphertext, base64url. */
export function fakeMessage(
  groupId: Uint8Array,
  epoch: number,
  contentType: ContentTypeName = "application",
  size = 64,
  ciphertext: Uint8Array = randomBytes(size),
): string {
  return toBase64Url(
    encodeMlsMessage({
      version: "mls10",
      wireformat: "mls_private_message",
      privateMessage: {
        groupId,
        epoch: BigInt(epoch),
        contentType,
        authenticatedData: new Uint8Array(),
        encryptedSenderData: randomBytes(16),
        ciphertext,
      },
    }),
  )
}

/** A Commit (PrivateMessage framing) at `epoch`. */
export const fakeCommit = (groupId: Uint8Array, epoch: number) => fakeMessage(groupId, epoch, "commit", 96)

/** A Welcome-shaped MLSMessage with no secrets, base64url. */
export function fakeWelcome(): string {
  return toBase64Url(
    encodeMlsMessage({
      version: "mls10",
      wireformat: "mls_welcome",
      welcome: {
        cipherSuite: "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519",
        secrets: [],
        encryptedGroupInfo: randomBytes(64),
      },
    }),
  )
}

/** A fresh random group id: its bytes and its base64url. */
export function newGroupId(): { bytes: Uint8Array; id: string } {
  const bytes = randomBytes(16)
  return { bytes, id: toBase64Url(bytes) }
}
