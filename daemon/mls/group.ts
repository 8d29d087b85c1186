/**
 * Group operations of DESIGN §3 over ts-mls: create, join from a Welcome, and the commits (add,
 * remove, self-update, committing others' proposals) plus the leave proposal. Pure: each returns a
 * new state and the bytes to post; the input state is never changed.
 *
 * A commit's state is pending: only one commit per epoch can win (RFC 9420 §14), so the caller
 * adopts `PendingCommit.state` once the server accepted `commit`, and on epoch_conflict drops it,
 * processes the winner from the old state and builds its commit again on the result.
 */
import {
  createCommit,
  createGroup,
  createGroupInfoWithExternalPubAndRatchetTree,
  createProposal,
  defaultCapabilities,
  emptyPskIndex,
  encodeMlsMessage,
  decodeMlsMessage,
  generateKeyPackageWithKey,
  joinGroupExternal,
  joinGroupWithExtensions,
} from "ts-mls"
import { ratchetTreeFromExtension } from "ts-mls/groupInfo.js"
import type { CiphersuiteImpl, KeyPackage, MLSMessage, PrivateKeyPackage, Proposal } from "ts-mls"
import { sameBytes } from "../../shared/bytes.js"
import type { SignatureKeyPair } from "./identity.js"
import { basicCredential } from "./credentialCheck.js"
import type { CredentialCheck } from "./credentialCheck.js"
import { GroupError, guarded } from "./groupError.js"
import { validateKeyPackageFor } from "./groupKeyPackage.js"
import type { Invitee } from "./groupKeyPackage.js"
import { encodeGroupName, groupNameExtension, groupNameFromExtensions } from "./groupName.js"
import { clientConfigFor, isActive, memberAt, members, ownLeafIndex, withCheck } from "./groupState.js"
import type { ChatGroup, Member } from "./groupState.js"

/** The creator's leaf is a KeyPackage leaf until its first path update; it must be current meanwhile. */
const creatorLeafLifetimeMs = 90 * 24 * 3600_000
const clockSlackMs = 3600_000

export interface Creator {
  /** The creator's credential identity: its client id. */
  identity: string
  /** The same arrays on every call: the crypto provider caches the signing key by array identity. */
  keys: SignatureKeyPair
}

export interface CreateChatGroupInput {
  name: string
  creator: Creator
  now: number
  cs: CiphersuiteImpl
  /** 16 random bytes unless given. */
  groupId?: Uint8Array
}

/** A KeyPackage of one's own for a leaf made now (a new group's first leaf, an external join's). */
function ownKeyPackage(creator: Creator, now: number, cs: CiphersuiteImpl) {
  return generateKeyPackageWithKey(
    basicCredential(creator.identity),
    defaultCapabilities(),
    {
      notBefore: BigInt(Math.floor((now - clockSlackMs) / 1000)),
      notAfter: BigInt(Math.floor((now + creatorLeafLifetimeMs) / 1000)),
    },
    [],
    { signKey: creator.keys.privateKey, publicKey: creator.keys.publicKey },
    cs,
  )
}

/**
 * The GroupInfo of the group's current epoch that the server keeps for external joins (RFC 9420 §12.4.3.2), as an
 * MLSMessage: signed, with `external_pub` and the ratchet tree. Without the group's name: names never reach the server.
 */
export async function externalGroupInfo(group: ChatGroup, cs: CiphersuiteImpl): Promise<Uint8Array> {
  const groupInfo = await createGroupInfoWithExternalPubAndRatchetTree(group.mls, [], cs)
  return encodeMlsMessage({ version: "mls10", wireformat: "mls_group_info", groupInfo })
}

/** A one-member group at epoch 0 (RFC 9420 §11). */
export async function createChatGroup(input: CreateChatGroupInput): Promise<ChatGroup> {
  encodeGroupName(input.name)
  const { cs, creator, now } = input
  return guarded(async () => {
    const { publicPackage, privatePackage } = await ownKeyPackage(creator, now, cs)
    const groupId = input.groupId ?? cs.rng.randomBytes(16)
    const mls = await createGroup(groupId, publicPackage, privatePackage, [], cs)
    return { mls, name: input.name }
  })
}

export interface Joined {
  state: ChatGroup
  name: string
  members: Member[]
}

/** The one MLSMessage `bytes` holds, nothing after it, of `wireformat` if given; else malformed_message. */
export function decodeWhole<W extends MLSMessage["wireformat"]>(
  bytes: Uint8Array,
  wireformat?: W,
  what = "an MLSMessage",
): Extract<MLSMessage, { wireformat: W }> {
  const decoded = decodeMlsMessage(bytes, 0)
  if (decoded === undefined || decoded[1] !== bytes.length || (wireformat && decoded[0].wireformat !== wireformat))
    throw new GroupError("malformed_message", `not ${what}`)
  return decoded[0] as Extract<MLSMessage, { wireformat: W }>
}

/**
 * Joins from a Welcome carrying the ratchet tree (NOTES.md interop), with the private parts of the
 * KeyPackage it was made for. Every leaf's credential goes through `check` (RFC 9420 §12.4.3.1).
 */
export async function joinFromWelcome(
  welcomeBytes: Uint8Array,
  keyPackage: KeyPackage,
  privateKeyPackage: PrivateKeyPackage,
  cs: CiphersuiteImpl,
  check: CredentialCheck,
): Promise<Joined> {
  const { welcome } = decodeWhole(welcomeBytes, "mls_welcome", "a Welcome")
  return guarded(async () => {
    const [mls, extensions] = await joinGroupWithExtensions(
      welcome,
      keyPackage,
      privateKeyPackage,
      emptyPskIndex,
      cs,
      undefined,
      undefined,
      clientConfigFor(check),
    )
    const state = { mls, name: groupNameFromExtensions(extensions) }
    return { state, name: state.name, members: members(state) }
  })
}

export interface PendingCommit {
  /** The state after the commit: adopt it only once the server accepted `commit`. */
  state: ChatGroup
  /** MLSMessage carrying a PublicMessage commit (NOTES.md interop). */
  commit: Uint8Array
  /** The new epoch's GroupInfo for external joins (`externalGroupInfo`), posted with the Commit. */
  groupInfo: Uint8Array
  /** MLSMessage carrying the Welcome for added members, ratchet tree included; absent when nobody was added. */
  welcome?: Uint8Array
  added: Member[]
  removed: Member[]
  epoch: bigint
}

/**
 * Adds the invitees, each KeyPackage checked against the directory's user and key first. Proposals
 * received and not yet committed are committed too (ts-mls commits every pending proposal by reference).
 */
export async function addMembers(
  group: ChatGroup,
  invitees: Invitee[],
  now: number,
  cs: CiphersuiteImpl,
  check: CredentialCheck,
): Promise<PendingCommit> {
  const present = new Set(members(group).map((m) => m.identity))
  for (const invitee of invitees) {
    if (present.has(invitee.identity))
      throw new GroupError("already_member", `${invitee.identity} is in the group already`, {
        identity: invitee.identity,
      })
    await validateKeyPackageFor(invitee.keyPackage, invitee.identity, invitee.signaturePublicKey, now, cs)
  }
  return commit(
    group,
    invitees.map((i) => ({ proposalType: "add", add: { keyPackage: i.keyPackage } })),
    cs,
    check,
  )
}

/** Removes members (devices) by credential identity; removing oneself is proposeLeave (RFC 9420 §12.2). */
export async function removeMembers(
  group: ChatGroup,
  identities: string[],
  cs: CiphersuiteImpl,
  check: CredentialCheck,
): Promise<PendingCommit> {
  const present = members(group)
  const proposals: Proposal[] = identities.map((identity) => {
    const member = present.find((m) => m.identity === identity)
    if (member === undefined) throw new GroupError("unknown_member", `${identity} is not in the group`, { identity })
    if (member.leafIndex === ownLeafIndex(group))
      throw new GroupError("cannot_remove_self", "a member cannot commit its own removal; propose to leave")
    return { proposalType: "remove", remove: { removed: member.leafIndex } }
  })
  return commit(group, proposals, cs, check)
}

/**
 * An empty commit with a fresh path: new leaf and path keys for post-compromise security
 * (RFC 9420 §12.4). Also commits any pending proposals.
 */
export function selfUpdate(group: ChatGroup, cs: CiphersuiteImpl, check: CredentialCheck): Promise<PendingCommit> {
  return commit(group, [], cs, check)
}

/** Commits the proposals received so far (e.g. another member's leave) by reference (RFC 9420 §12.4). */
export function commitPendingProposals(
  group: ChatGroup,
  cs: CiphersuiteImpl,
  check: CredentialCheck,
): Promise<PendingCommit> {
  return commit(group, [], cs, check)
}

export interface ProposedLeave {
  state: ChatGroup
  /** MLSMessage carrying a PublicMessage Remove proposal of one's own leaf. */
  proposal: Uint8Array
}

/**
 * Leaving: a member cannot commit its own removal (RFC 9420 §12.1.3, §12.2), so it proposes it and
 * another member commits it. Until then this member may read, but it makes no more commits.
 */
export async function proposeLeave(group: ChatGroup, cs: CiphersuiteImpl): Promise<ProposedLeave> {
  if (!isActive(group)) throw new GroupError("not_member", "not a member of this group")
  const removeSelf: Proposal = { proposalType: "remove", remove: { removed: ownLeafIndex(group) } }
  return guarded(async () => {
    const { newState, message } = await createProposal(group.mls, true, removeSelf, cs)
    return { state: { ...group, mls: newState }, proposal: encodeMlsMessage(message) }
  })
}

/** Whether this member's own Remove proposal waits for a commit. */
export function leavePending(group: ChatGroup): boolean {
  const own = ownLeafIndex(group)
  return Object.values(group.mls.unappliedProposals).some(
    (p) => p.proposal.proposalType === "remove" && p.proposal.remove.removed === own,
  )
}

/** Who joined and who left between two member lists: a leaf whose signature key changed counts as both. */
export function memberChanges(before: Member[], after: Member[]): { added: Member[]; removed: Member[] } {
  // By leaf index, so that a group of 10,000 compares 10,000 pairs rather than 10,000².
  const byLeaf = (list: Member[]) => new Map(list.map((m) => [m.leafIndex, m]))
  const [was, is] = [byLeaf(before), byLeaf(after)]
  const kept = (m: Member, other: Map<number, Member>) => {
    const o = other.get(m.leafIndex)
    return o !== undefined && sameBytes(o.signaturePublicKey, m.signaturePublicKey)
  }
  return { added: after.filter((a) => !kept(a, was)), removed: before.filter((b) => !kept(b, is)) }
}

/**
 * `memberChanges` of two states' trees, looking only at the leaves whose node is not the very same object: a Commit
 * changes a few leaves of a tree that may have 10,000.
 */
export function memberChangesOfStates(before: ChatGroup, after: ChatGroup): { added: Member[]; removed: Member[] } {
  const [was, is] = [before.mls.ratchetTree, after.mls.ratchetTree]
  const added: Member[] = []
  const removed: Member[] = []
  for (let node = 0; node < Math.max(was.length, is.length); node += 2) {
    if (was[node] === is[node]) continue
    const [old, now] = [memberAt(was, node / 2), memberAt(is, node / 2)]
    if (old !== undefined && now !== undefined && sameBytes(old.signaturePublicKey, now.signaturePublicKey)) continue
    if (old !== undefined) removed.push(old)
    if (now !== undefined) added.push(now)
  }
  return { added, removed }
}

async function commit(
  group: ChatGroup,
  proposals: Proposal[],
  cs: CiphersuiteImpl,
  check: CredentialCheck,
): Promise<PendingCommit> {
  if (!isActive(group)) throw new GroupError("not_member", "not a member of this group")
  // Our own Remove would be committed by reference, which RFC 9420 §12.2 forbids to the committer.
  if (leavePending(group)) throw new GroupError("leave_pending", "this member proposed to leave")
  return guarded(async () => {
    const result = await createCommit(
      { state: withCheck(group.mls, check), cipherSuite: cs },
      {
        extraProposals: proposals,
        wireAsPublicMessage: true,
        ratchetTreeExtension: true,
        groupInfoExtensions: group.name === "" ? [] : [groupNameExtension(group.name)],
      },
    )
    const state = { ...group, mls: result.newState }
    return {
      state,
      commit: encodeMlsMessage(result.commit),
      groupInfo: await externalGroupInfo(state, cs),
      welcome:
        result.welcome === undefined
          ? undefined
          : encodeMlsMessage({ version: "mls10", wireformat: "mls_welcome", welcome: result.welcome }),
      ...memberChangesOfStates(group, state),
      epoch: result.newState.groupContext.epoch,
    }
  })
}

export interface ExternalJoin {
  /** The state after the external Commit: adopt it only once the server accepted `commit`. */
  state: ChatGroup
  /** MLSMessage carrying the PublicMessage external Commit. */
  commit: Uint8Array
  /** The new epoch's GroupInfo, posted with the Commit. */
  groupInfo: Uint8Array
  /** Whether the Commit removes this device's old leaf (a resync). */
  resync: boolean
  /** The epoch the Commit is made at (the GroupInfo's). */
  epoch: bigint
}

/**
 * Joins a group by external Commit (RFC 9420 §12.4.3.2) from the GroupInfo the server keeps, with a fresh leaf of
 * `self`'s signature key. When the tree holds a leaf with that key (this device lost sync, or restored a backup) the
 * Commit removes it: the resync of §12.4.3.2. ts-mls checks the tree and the GroupInfo's signature; every leaf's
 * credential goes through `check`. `name` is the group's name as this device knows it (names never reach the server).
 */
export async function joinByExternalCommit(
  groupInfoBytes: Uint8Array,
  self: Creator,
  name: string,
  now: number,
  cs: CiphersuiteImpl,
  check: CredentialCheck,
): Promise<ExternalJoin> {
  const { groupInfo } = decodeWhole(groupInfoBytes, "mls_group_info", "a GroupInfo")
  return guarded(async () => {
    const tree = ratchetTreeFromExtension(groupInfo)
    if (tree === undefined) throw new GroupError("malformed_message", "the GroupInfo carries no ratchet tree")
    // ts-mls finds the old leaf by signature key; asked to resync without one it would remove a wrong index.
    const resync = tree.some((n) => n?.nodeType === "leaf" && sameBytes(n.leaf.signaturePublicKey, self.keys.publicKey))
    const { publicPackage, privatePackage } = await ownKeyPackage(self, now, cs)
    const { publicMessage, newState } = await joinGroupExternal(
      groupInfo,
      publicPackage,
      privatePackage,
      resync,
      cs,
      undefined,
      clientConfigFor(check),
    )
    const state: ChatGroup = { mls: newState, name }
    return {
      state,
      commit: encodeMlsMessage({ version: "mls10", wireformat: "mls_public_message", publicMessage }),
      groupInfo: await externalGroupInfo(state, cs),
      resync,
      epoch: groupInfo.groupContext.epoch,
    }
  })
}
