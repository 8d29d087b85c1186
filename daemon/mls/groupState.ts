/** A chat group's state: the ts-mls ClientState plus the name only members know; reading and (de)serialising it. */
import { decodeGroupState } from "ts-mls"
import { decodeGroupStateWithoutTree, encodeGroupStateWithoutTree } from "ts-mls/clientState.js"
import { decodeRatchetTree, encodeRatchetTree } from "ts-mls/ratchetTree.js"
import { defaultClientConfig } from "ts-mls/clientConfig.js"
import type { ClientConfig, ClientState, LeafNode, RatchetTree } from "ts-mls"
import { authServiceFor, identityOf } from "./credentialCheck.js"
import type { CredentialCheck } from "./credentialCheck.js"
import { GroupError } from "./groupError.js"
import { LruCache } from "../../crypto/lru.js"
import { toBase64Url } from "../../rpc-schema/common.js"
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

/**
 * The credential identity of each leaf node, kept by node: ts-mls never changes a leaf node in place (it is frozen
 * once encoded), and a group of 10,000 would otherwise decode 10,000 credentials every time its members are listed.
 */
const leafIdentities = new WeakMap<object, string>()

function leafIdentity(leaf: LeafNode): string {
  let identity = leafIdentities.get(leaf)
  if (identity === undefined) {
    identity = identityOf(leaf.credential)
    leafIdentities.set(leaf, identity)
  }
  return identity
}

/** The members of a ratchet tree: leaves sit at even node indexes (RFC 9420 §4.1). */
export function membersOfTree(tree: RatchetTree): Member[] {
  const out: Member[] = []
  tree.forEach((node, nodeIndex) => {
    if (node?.nodeType !== "leaf") return
    out.push({
      identity: leafIdentity(node.leaf),
      leafIndex: nodeIndex / 2,
      signaturePublicKey: node.leaf.signaturePublicKey,
    })
  })
  return out
}

/** The member at one leaf, without listing the whole tree (a message's sender in a group of 10,000). */
export function memberAt(tree: RatchetTree, leafIndex: number): Member | undefined {
  const node = tree[leafIndex * 2]
  if (node?.nodeType !== "leaf") return undefined
  return { identity: leafIdentity(node.leaf), leafIndex, signaturePublicKey: node.leaf.signaturePublicKey }
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

/**
 * A group's state as stored, in two parts: `core`, which changes with every message (ratchets, proposals), and the
 * ratchet tree, which changes only with the epoch and is named by the group context's tree hash (RFC 9420 §8.1
 * covers every byte of every node). A store writes the tree once per tree hash, so a message in a group of 10,000
 * writes kilobytes, not the 2.6 MB tree. `tree` encodes it only when called (ts-mls keeps a decoded tree's bytes).
 */
export interface SerializedState {
  core: Uint8Array
  treeHash: Uint8Array
  tree: () => Uint8Array
}

/** Version 1 (before the split) held the whole GroupState in `core`; it is still read, and saved as version 2. */
const legacyFormat = 1
const formatVersion = 2

/** core: [version u8][name length u16][name][ts-mls GroupState without the tree]; the ClientConfig is code. */
export function serializeState(group: ChatGroup): SerializedState {
  const nameBytes = new TextEncoder().encode(group.name)
  const mls = encodeGroupStateWithoutTree(group.mls)
  const core = new Uint8Array(3 + nameBytes.length + mls.length)
  core[0] = formatVersion
  new DataView(core.buffer).setUint16(1, nameBytes.length)
  core.set(nameBytes, 3)
  core.set(mls, 3 + nameBytes.length)
  const tree = group.mls.ratchetTree
  const treeHash = group.mls.groupContext.treeHash
  recentTrees.set(toBase64Url(treeHash), tree)
  return { core, treeHash, tree: () => encodeRatchetTree(tree) }
}

/**
 * Decoded ratchet trees by tree hash, so that loading a state whose tree was saved or loaded lately neither reads
 * nor decodes it again (12 ms at 10,000 members, for every message). Safe to share: one hash is one tree, and ts-mls
 * treats a state's tree as a value (operations make new trees, never change a state's in place).
 */
const recentTrees = new LruCache<string, RatchetTree>(4)

export function deserializeState(state: SerializedState): ChatGroup {
  const { core } = state
  const version = core[0]
  if (core.length < 3 || (version !== formatVersion && version !== legacyFormat))
    throw new GroupError("internal", "unknown group state format")
  const nameLength = new DataView(core.buffer, core.byteOffset, core.byteLength).getUint16(1)
  const name = decodeGroupName(core.subarray(3, 3 + nameLength))
  const decoded =
    version === legacyFormat
      ? decodeGroupState(core, 3 + nameLength)
      : decodeGroupStateWithoutTree(treeOf(state))(core, 3 + nameLength)
  // ts-mls decoders answer the number of bytes they read.
  if (decoded === undefined || 3 + nameLength + decoded[1] !== core.length)
    throw new GroupError("internal", "corrupt group state")
  return { mls: { ...decoded[0], clientConfig: defaultClientConfig }, name }
}

function treeOf(state: SerializedState): RatchetTree {
  const key = toBase64Url(state.treeHash)
  const recent = recentTrees.get(key)
  if (recent !== undefined) return recent
  const bytes = state.tree()
  const decoded = decodeRatchetTree(bytes, 0)
  if (decoded === undefined || decoded[1] !== bytes.length) throw new GroupError("internal", "corrupt ratchet tree")
  recentTrees.set(key, decoded[0])
  return decoded[0]
}
