/**
 * Application messages and everything a member receives: encrypting text, and processing an
 * incoming MLSMessage into a new state plus what happened (text, commit, proposal).
 */
import { acceptAll, createApplicationMessage, encodeMlsMessage, makePskIndex, processMessage } from "ts-mls"
import type { CiphersuiteImpl, MLSMessage, PrivateMessage, Proposal } from "ts-mls"
import { decryptSenderData } from "ts-mls/privateMessage.js"
import { identityOf, type CredentialCheck } from "./credentialCheck.js"
import { decodeWhole, memberChangesOfStates } from "./group.js"
import { GroupError, guarded } from "./groupError.js"
import { epoch, groupId, isActive, memberAt, members, withCheck } from "./groupState.js"
import type { ChatGroup, Member } from "./groupState.js"
import { sameBytes } from "../../shared/bytes.js"

export interface EncryptedText {
  state: ChatGroup
  /** MLSMessage carrying a PrivateMessage (RFC 9420 §6.3). */
  message: Uint8Array
}

/** Encrypts UTF-8 text for the group's current epoch. */
export async function encryptText(group: ChatGroup, text: string, cs: CiphersuiteImpl): Promise<EncryptedText> {
  if (!isActive(group)) throw new GroupError("not_member", "not a member of this group")
  if (Object.keys(group.mls.unappliedProposals).length > 0)
    throw new GroupError("proposals_pending", "commit the pending proposals before sending")
  return guarded(async () => {
    const { newState, privateMessage } = await createApplicationMessage(group.mls, new TextEncoder().encode(text), cs)
    const message = encodeMlsMessage({ version: "mls10", wireformat: "mls_private_message", privateMessage })
    return { state: { ...group, mls: newState }, message }
  })
}

export type Incoming =
  | { kind: "application"; state: ChatGroup; text: string; sender: Member }
  | {
      kind: "commit"
      state: ChatGroup
      committer: Member | undefined
      added: Member[]
      removed: Member[]
      epoch: bigint
      /** This member was removed: the state can do nothing more (RFC 9420 §12.1.3). */
      removedSelf: boolean
    }
  | { kind: "proposal"; state: ChatGroup; proposer: Member | undefined; proposalType: string; removes?: Member }
  /** A handshake message of an earlier epoch, e.g. the echo of one's own accepted commit: nothing to do. */
  | { kind: "stale"; state: ChatGroup }

const utf8 = new TextDecoder("utf-8", { fatal: true })

/**
 * The members' check of an external Commit (RFC 9420 §12.4.3.2), beyond what ts-mls and the credential check do:
 * whether `joiner` may join a group whose members are `present`, removing `removed` (its resync). A refusal reason,
 * or undefined to accept.
 */
export type ExternalJoinCheck = (joiner: Member, removed: Member | undefined, present: Member[]) => string | undefined

/** An external Commit's joiner (its path leaf; `leafIndex` is -1: it has none yet) and the leaf it removes. */
function externalJoiner(group: ChatGroup, message: MLSMessage): { joiner: Member; removed?: Member } | undefined {
  if (message.wireformat !== "mls_public_message") return undefined
  const content = message.publicMessage.content
  if (content.sender.senderType !== "new_member_commit" || content.contentType !== "commit") return undefined
  const leaf = content.commit.path?.leafNode
  if (leaf === undefined) throw new GroupError("malformed_message", "an external Commit needs an UpdatePath")
  const joiner = { identity: identityOf(leaf.credential), leafIndex: -1, signaturePublicKey: leaf.signaturePublicKey }
  const remove = content.commit.proposals.find(
    (p) => p.proposalOrRefType === "proposal" && p.proposal.proposalType === "remove",
  )
  const removedLeaf =
    remove?.proposalOrRefType === "proposal" && remove.proposal.proposalType === "remove"
      ? remove.proposal.remove.removed
      : undefined
  if (removedLeaf === undefined) return { joiner }
  // ts-mls does not check an external Commit's Remove against the tree (RFC 9420 §12.4.3.2 wants a member's leaf).
  const removed = memberAt(group.mls.ratchetTree, removedLeaf)
  if (removed === undefined) throw new GroupError("malformed_message", "the external Commit removes an empty leaf")
  return { joiner, removed }
}

/** The sender's member entry of a PrivateMessage, from its sender data (RFC 9420 §6.3.2) and the epoch's tree. */
async function privateSender(group: ChatGroup, pm: PrivateMessage, cs: CiphersuiteImpl): Promise<Member> {
  const historical = group.mls.historicalReceiverData.get(pm.epoch)
  const [secret, tree] =
    pm.epoch === epoch(group) || historical === undefined
      ? [group.mls.keySchedule.senderDataSecret, group.mls.ratchetTree]
      : [historical.senderDataSecret, historical.ratchetTree]
  const senderData = await decryptSenderData(pm, secret, cs)
  const sender = senderData === undefined ? undefined : memberAt(tree, senderData.leafIndex)
  if (sender === undefined) throw new GroupError("undecryptable", "unknown sender")
  return sender
}

function describeProposal(group: ChatGroup, proposal: Proposal): { proposalType: string; removes?: Member } {
  if (proposal.proposalType !== "remove") return { proposalType: String(proposal.proposalType) }
  return {
    proposalType: "remove",
    removes: memberAt(group.mls.ratchetTree, proposal.remove.removed),
  }
}

/**
 * Processes one MLSMessage from the delivery service. Commits and proposals are checked by ts-mls
 * (signatures, membership tag, confirmation tag, RFC 9420 §12 proposal rules); every new credential
 * goes through `check`. The input state is unchanged; a thrown GroupError means the message changes nothing.
 */
export async function processIncoming(
  group: ChatGroup,
  bytes: Uint8Array,
  cs: CiphersuiteImpl,
  check: CredentialCheck,
  externalCheck: ExternalJoinCheck = () => "external joins are not accepted here",
): Promise<Incoming> {
  if (!isActive(group)) throw new GroupError("not_member", "not a member of this group")
  const message = decodeWhole(bytes)
  if (message.wireformat !== "mls_public_message" && message.wireformat !== "mls_private_message")
    throw new GroupError("malformed_message", `unexpected ${message.wireformat}`)
  const [msgGroupId, msgEpoch, contentType] =
    message.wireformat === "mls_public_message"
      ? [
          message.publicMessage.content.groupId,
          message.publicMessage.content.epoch,
          message.publicMessage.content.contentType,
        ]
      : [message.privateMessage.groupId, message.privateMessage.epoch, message.privateMessage.contentType]
  if (!sameBytes(msgGroupId, groupId(group))) throw new GroupError("malformed_message", "message for another group")
  if (msgEpoch > epoch(group))
    throw new GroupError("epoch_mismatch", `message for epoch ${msgEpoch}, group at ${epoch(group)}`, {
      messageEpoch: msgEpoch,
      groupEpoch: epoch(group),
    })
  // Handshake messages only count in their own epoch (RFC 9420 §6); old application data is still readable.
  if (msgEpoch < epoch(group) && contentType !== "application") return { kind: "stale", state: group }

  return guarded(async () => {
    const external = externalJoiner(group, message)
    if (external !== undefined) {
      const refusal = externalCheck(external.joiner, external.removed, members(group))
      if (refusal !== undefined)
        throw new GroupError(
          "credential_refused",
          `external Commit of ${external.joiner.identity} refused: ${refusal}`,
          {
            identity: external.joiner.identity,
            reason: refusal,
          },
        )
    }
    const sender =
      message.wireformat === "mls_private_message" ? await privateSender(group, message.privateMessage, cs) : undefined
    let seen: Proposal | undefined
    const result = await processMessage(
      message,
      withCheck(group.mls, check),
      makePskIndex(group.mls, {}),
      (incoming) => {
        if (incoming.kind === "proposal") seen = incoming.proposal.proposal
        return acceptAll(incoming)
      },
      cs,
    )
    const state: ChatGroup = { ...group, mls: result.newState }
    if (result.kind === "applicationMessage") {
      if (sender === undefined) throw new GroupError("malformed_message", "application data must be encrypted")
      let text: string
      try {
        text = utf8.decode(result.message)
      } catch {
        throw new GroupError("malformed_message", "message text is not UTF-8")
      }
      return { kind: "application", state, text, sender }
    }
    const senderLeaf =
      message.wireformat === "mls_public_message" && message.publicMessage.content.sender.senderType === "member"
        ? message.publicMessage.content.sender.leafIndex
        : sender?.leafIndex
    // An external Commit's committer is the joiner, at the leaf it took in the new tree.
    const from =
      senderLeaf !== undefined
        ? memberAt(group.mls.ratchetTree, senderLeaf)
        : external && members(state).find((m) => sameBytes(m.signaturePublicKey, external.joiner.signaturePublicKey))
    if (contentType === "proposal") {
      if (seen === undefined) throw new GroupError("internal", "proposal not reported by ts-mls")
      return { kind: "proposal", state, proposer: from, ...describeProposal(group, seen) }
    }
    return {
      kind: "commit",
      state,
      committer: from,
      ...memberChangesOfStates(group, state),
      // A removed member's state stays at the old epoch; the commit still started the next one.
      epoch: msgEpoch + 1n,
      removedSelf: !isActive(state),
    }
  })
}
