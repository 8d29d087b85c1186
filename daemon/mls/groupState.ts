/** A chat group's state: the ts-mls ClientState plus the name only members know; reading and (de)serialising it. */
import { decodeGroupState, encodeGroupState } from "ts-mls"
import { defaultClientConfig } from "ts-mls/clientConfig.js"
import type { ClientConfig, ClientState, RatchetTree } from "ts-mls"
import { authServiceFor, identityOf } from "./credentialCheck.js"
import type { CredentialCheck } from "./credentialCheck.js"
import { GroupError } from "./groupError.js"
import { decodeGroupName } from "./groupName.js"

export interface ChatGroup {
  readonly mls: ClientState
  readonly name: string
}

export interface Member {
  /** The credential identity: a client id, or the bare user name of a leaf from before devices. */
  identity: string
  leafIndex: number
  signaturePublicKey: Uint8Array
}

export function groupId(group: ChatGroup): Uint8Array {
  return group.mls.groupContext.groupId
}

export function epoch(group: ChatGroup): bigint {
  return group.mls.groupContext.epoch
}

export function groupName(group: ChatGroup): string {
  return group.name
}

export function ownLeafIndex(group: ChatGroup): number {
  return group.mls.privatePath.leafIndex
}

/** This member proposed its own removal (a leave, RFC 9420 §12.1.3) and no Commit has taken it in yet. */
export function leaveProposed(group: ChatGroup): boolean {
  const own = ownLeafIndex(group)
  return Object.values(group.mls.unappliedProposals).some(
    (p) => p.proposal.proposalType === "remove" && p.proposal.remove.removed === own,
  )
}

/** False once a processed commit removed this member (RFC 9420 §12.1.3). */
export function isActive(group: ChatGroup): boolean {
  return group.mls.groupActiveState.kind === "active"
}

/** The members of a ratchet tree: leaves sit at even node indexes (RFC 9420 §4.1). */
export function membersOfTree(tree: RatchetTree): Member[] {
  const out: Member[] = []
  tree.forEach((node, nodeIndex) => {
    if (node?.nodeType !== "leaf") return
    out.push({
      identity: identityOf(node.leaf.credential),
      leafIndex: nodeIndex / 2,
      signaturePublicKey: node.leaf.signaturePublicKey,
    })
  })
  return out
}

export function members(group: ChatGroup): Member[] {
  return membersOfTree(group.mls.ratchetTree)
}

/** ts-mls's defaults with the daemon's credential check as the authentication service. */
export function clientConfigFor(check: CredentialCheck): ClientConfig {
  return { ...defaultClientConfig, authService: authServiceFor(check) }
}

/** The state with the daemon's credential check installed; ts-mls reads it from the state. */
export function withCheck(mls: ClientState, check: CredentialCheck): ClientState {
  return { ...mls, clientConfig: clientConfigFor(check) }
}

const formatVersion = 1

/** [version u8][name length u16][name][ts-mls GroupState]; the ClientConfig is code, not state. */
export function serializeState(group: ChatGroup): Uint8Array {
  const nameBytes = new TextEncoder().encode(group.name)
  const mls = encodeGroupState(group.mls)
  const out = new Uint8Array(3 + nameBytes.length + mls.length)
  out[0] = formatVersion
  new DataView(out.buffer).setUint16(1, nameBytes.length)
  out.set(nameBytes, 3)
  out.set(mls, 3 + nameBytes.length)
  return out
}

export function deserializeState(bytes: Uint8Array): ChatGroup {
  if (bytes.length < 3 || bytes[0] !== formatVersion) throw new GroupError("internal", "unknown group state format")
  const nameLength = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint16(1)
  const name = decodeGroupName(bytes.subarray(3, 3 + nameLength))
  const decoded = decodeGroupState(bytes, 3 + nameLength)
  // ts-mls decoders answer the number of bytes they read.
  if (decoded === undefined || 3 + nameLength + decoded[1] !== bytes.length)
    throw new GroupError("internal", "corrupt group state")
  return { mls: { ...decoded[0], clientConfig: defaultClientConfig }, name }
}
