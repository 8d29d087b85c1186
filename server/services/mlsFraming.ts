/**
 * What the delivery service reads of an MLSMessage: only the cleartext framing (RFC 9420 §6.2,
 * §6.3): group id, epoch, content type; of a GroupInfo its group, epoch and ratchet tree; of an external Commit the
 * joiner's credential and the leaf it removes. It never decrypts and never verifies signatures: the members do that.
 */
import type { ContentTypeName, RatchetTree } from "ts-mls"
import { ratchetTreeFromExtension } from "ts-mls/groupInfo.js"
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

/** What the server reads of a GroupInfo (RFC 9420 §12.4.3): its group, its epoch, and the ratchet tree it carries. */
export interface GroupInfoFraming {
  groupId: Uint8Array
  epoch: number
  tree: RatchetTree
}

/**
 * Checks that `bytes` is one GroupInfo MLSMessage made for external joins: it carries the `external_pub` extension
 * (the key an external Commit encrypts to) and the `ratchet_tree` extension (the server serves no trees). Its
 * signature is the joiner's to check (ts-mls `joinGroupExternal` does).
 */
export function readGroupInfo(bytes: Uint8Array): GroupInfoFraming {
  const m = decode(bytes)
  if (m.wireformat !== "mls_group_info")
    throw new AppError("malformed_message", `expected a GroupInfo, not ${m.wireformat}`)
  const info = m.groupInfo
  if (!info.extensions.some((e) => e.extensionType === "external_pub"))
    throw new AppError("malformed_message", "the GroupInfo has no external_pub extension")
  let tree: RatchetTree | undefined
  try {
    tree = ratchetTreeFromExtension(info)
  } catch {
    tree = undefined
  }
  if (tree === undefined) throw new AppError("malformed_message", "the GroupInfo carries no readable ratchet tree")
  const { groupId, epoch } = info.groupContext
  if (epoch > BigInt(Number.MAX_SAFE_INTEGER)) throw new AppError("malformed_message", "epoch out of range")
  return { groupId, epoch: Number(epoch), tree }
}

/** What the server reads of an external Commit (RFC 9420 §12.4.3.2): who joins, and which leaf it removes. */
export interface ExternalCommitFraming {
  /** The joiner's credential identity (its client id) and signature key, from the Commit's path leaf node. */
  identity: string
  signatureKey: Uint8Array
  /** The leaf its resync Remove removes, if any. */
  removedLeaf: number | undefined
}

const utf8 = new TextDecoder("utf-8", { fatal: true })

/**
 * The joiner of an external Commit: a PublicMessage Commit from a `new_member_commit` sender with an UpdatePath whose
 * leaf carries a basic credential, with one ExternalInit and at most one Remove (the resync of §12.4.3.2) and nothing
 * else. Anything else is malformed_message; the members check the rest (signatures, the confirmation tag).
 */
export function readExternalCommit(bytes: Uint8Array): ExternalCommitFraming {
  const m = decode(bytes)
  if (m.wireformat !== "mls_public_message")
    throw new AppError("malformed_message", "an external Commit is a PublicMessage")
  const c = m.publicMessage.content
  if (c.contentType !== "commit" || c.sender.senderType !== "new_member_commit")
    throw new AppError("malformed_message", "expected a Commit from a new_member_commit sender")
  const leaf = c.commit.path?.leafNode
  if (leaf === undefined) throw new AppError("malformed_message", "an external Commit needs an UpdatePath")
  if (leaf.credential.credentialType !== "basic")
    throw new AppError("malformed_message", "the joiner's credential is not a basic credential")
  let identity: string
  try {
    identity = utf8.decode(leaf.credential.identity)
  } catch {
    throw new AppError("malformed_message", "the joiner's credential identity is not UTF-8")
  }
  const proposals = c.commit.proposals.map((p) => {
    if (p.proposalOrRefType !== "proposal")
      throw new AppError("malformed_message", "an external Commit carries its proposals by value")
    return p.proposal
  })
  const inits = proposals.filter((p) => p.proposalType === "external_init")
  const removes = proposals.flatMap((p) => (p.proposalType === "remove" ? [p.remove.removed] : []))
  if (inits.length !== 1 || removes.length > 1 || inits.length + removes.length !== proposals.length)
    throw new AppError("malformed_message", "an external Commit holds one ExternalInit and at most one Remove")
  return { identity, signatureKey: leaf.signaturePublicKey, removedLeaf: removes[0] }
}

/** The credential identity of the leaf at `leafIndex` of a ratchet tree, if a basic credential sits there. */
export function leafIdentity(tree: RatchetTree, leafIndex: number): string | undefined {
  const node = tree[leafIndex * 2]
  if (node?.nodeType !== "leaf" || node.leaf.credential.credentialType !== "basic") return undefined
  try {
    return utf8.decode(node.leaf.credential.identity)
  } catch {
    return undefined
  }
}
