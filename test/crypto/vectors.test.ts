// RFC 9420 interoperability vectors (mlswg/mls-implementations) through the node:crypto provider.
import assert from "node:assert/strict"
import { describe, it } from "node:test"
import type { CiphersuiteImpl, PrivateMessage } from "ts-mls"
import { defaultKeyRetentionConfig, defaultPaddingConfig } from "ts-mls"
import { refhash } from "ts-mls/crypto/hash.js"
import { decryptWithLabel, encryptWithLabel } from "ts-mls/crypto/hpke.js"
import { deriveSecret, deriveTreeSecret, expandWithLabel } from "ts-mls/crypto/kdf.js"
import { signWithLabel, verifyWithLabel } from "ts-mls/crypto/signature.js"
import { encodeCommit } from "ts-mls/commit.js"
import { decodeGroupContext } from "ts-mls/groupContext.js"
import type { GroupContext } from "ts-mls/groupContext.js"
import { verifyGroupInfoConfirmationTag, verifyGroupInfoSignature } from "ts-mls/groupInfo.js"
import { initializeEpoch } from "ts-mls/keySchedule.js"
import { makeKeyPackageRef } from "ts-mls/keyPackage.js"
import { decodeMlsMessage } from "ts-mls/message.js"
import { protectApplicationData, protectProposal, unprotectPrivateMessage } from "ts-mls/messageProtection.js"
import { protectProposalPublic, unprotectPublicMessage } from "ts-mls/messageProtectionPublic.js"
import { decodeProposal, encodeProposal } from "ts-mls/proposal.js"
import { createSecretTree, deriveKey, deriveNonce, expandedLeaf, ratchetUntil } from "ts-mls/secretTree.js"
import { expandSenderDataKey, expandSenderDataNonce } from "ts-mls/sender.js"
import { leafToNodeIndex, toLeafIndex } from "ts-mls/treemath.js"
import { decryptGroupInfo, decryptGroupSecrets } from "ts-mls/welcome.js"
import { hex, implFor, loadVectors, providersFor, suiteName, toHex } from "./vectors.js"

/** Runs `check` for every entry of `file` on every provider that applies to its suite. */
function eachVector<T extends { cipher_suite: number }>(
  file: string,
  check: (v: T, impl: CiphersuiteImpl) => Promise<void>,
): void {
  for (const [index, v] of loadVectors<T>(file).entries()) {
    for (const kind of providersFor(v.cipher_suite)) {
      it(`matches entry ${index} (suite ${v.cipher_suite}) through the ${kind} provider`, async () => {
        await check(v, await implFor(kind, v.cipher_suite))
      })
    }
  }
}

function decoded<T>(result: [T, number] | undefined, what: string): T {
  if (result === undefined) throw new Error(`could not decode ${what}`)
  return result[0]
}

type CryptoBasics = {
  cipher_suite: number
  ref_hash: { label: string; value: string; out: string }
  expand_with_label: { secret: string; label: string; context: string; length: number; out: string }
  derive_secret: { secret: string; label: string; out: string }
  derive_tree_secret: { secret: string; label: string; generation: number; length: number; out: string }
  sign_with_label: { priv: string; pub: string; content: string; label: string; signature: string }
  encrypt_with_label: {
    priv: string
    pub: string
    label: string
    context: string
    plaintext: string
    kem_output: string
    ciphertext: string
  }
}

describe("crypto-basics.json", () => {
  eachVector<CryptoBasics>("crypto-basics.json", async (v, impl) => {
    const r = v.ref_hash
    assert.equal(toHex(await refhash(r.label, hex(r.value), impl.hash)), r.out)

    const e = v.expand_with_label
    assert.equal(toHex(await expandWithLabel(hex(e.secret), e.label, hex(e.context), e.length, impl.kdf)), e.out)

    const d = v.derive_secret
    assert.equal(toHex(await deriveSecret(hex(d.secret), d.label, impl.kdf)), d.out)

    const t = v.derive_tree_secret
    assert.equal(toHex(await deriveTreeSecret(hex(t.secret), t.label, t.generation, t.length, impl.kdf)), t.out)

    // EdDSA is deterministic, so our signature must be the vector's byte for byte.
    const s = v.sign_with_label
    assert.equal(toHex(await signWithLabel(hex(s.priv), s.label, hex(s.content), impl.signature)), s.signature)
    assert.equal(await verifyWithLabel(hex(s.pub), s.label, hex(s.content), hex(s.signature), impl.signature), true)
    const forged = hex(s.signature)
    forged[0]! ^= 1
    assert.equal(await verifyWithLabel(hex(s.pub), s.label, hex(s.content), forged, impl.signature), false)

    const x = v.encrypt_with_label
    const priv = await impl.hpke.importPrivateKey(hex(x.priv))
    const opened = await decryptWithLabel(
      priv,
      x.label,
      hex(x.context),
      hex(x.kem_output),
      hex(x.ciphertext),
      impl.hpke,
    )
    assert.equal(toHex(opened), x.plaintext)
    const pub = await impl.hpke.importPublicKey(hex(x.pub))
    const sealed = await encryptWithLabel(pub, x.label, hex(x.context), hex(x.plaintext), impl.hpke)
    const reopened = await decryptWithLabel(priv, x.label, hex(x.context), sealed.enc, sealed.ct, impl.hpke)
    assert.equal(toHex(reopened), x.plaintext)
  })
})

type SecretTreeVector = {
  cipher_suite: number
  encryption_secret: string
  sender_data: { sender_data_secret: string; ciphertext: string; key: string; nonce: string }
  leaves: {
    generation: number
    application_key: string
    application_nonce: string
    handshake_key: string
    handshake_nonce: string
  }[][]
}

describe("secret-tree.json", () => {
  eachVector<SecretTreeVector>("secret-tree.json", async (v, impl) => {
    const sd = v.sender_data
    const ciphertext = hex(sd.ciphertext)
    assert.equal(toHex(await expandSenderDataKey(impl, hex(sd.sender_data_secret), ciphertext)), sd.key)
    assert.equal(toHex(await expandSenderDataNonce(impl, hex(sd.sender_data_secret), ciphertext)), sd.nonce)

    // The patched tree is expanded lazily: each leaf's ratchets are derived on first use.
    let tree = await createSecretTree(v.leaves.length, hex(v.encryption_secret), impl.kdf)
    const config = { ...defaultKeyRetentionConfig, maximumForwardRatchetSteps: 2 ** 31 }
    for (const [leaf, generations] of v.leaves.entries()) {
      const [expanded, node] = await expandedLeaf(tree, leafToNodeIndex(toLeafIndex(leaf)), impl.kdf)
      tree = expanded
      for (const g of generations) {
        const [application] = await ratchetUntil(node.application, g.generation, config, impl.kdf)
        const [handshake] = await ratchetUntil(node.handshake, g.generation, config, impl.kdf)
        assert.equal(toHex(await deriveKey(application.secret, g.generation, impl)), g.application_key)
        assert.equal(toHex(await deriveNonce(application.secret, g.generation, impl)), g.application_nonce)
        assert.equal(toHex(await deriveKey(handshake.secret, g.generation, impl)), g.handshake_key)
        assert.equal(toHex(await deriveNonce(handshake.secret, g.generation, impl)), g.handshake_nonce)
      }
    }
  })
})

type KeyScheduleVector = {
  cipher_suite: number
  initial_init_secret: string
  epochs: {
    commit_secret: string
    psk_secret: string
    group_context: string
    joiner_secret: string
    welcome_secret: string
    init_secret: string
    sender_data_secret: string
    encryption_secret: string
    exporter_secret: string
    epoch_authenticator: string
    external_secret: string
    confirmation_key: string
    membership_key: string
    resumption_psk: string
    external_pub: string
  }[]
}

describe("key-schedule.json", () => {
  eachVector<KeyScheduleVector>("key-schedule.json", async (v, impl) => {
    let initSecret = hex(v.initial_init_secret)
    for (const e of v.epochs) {
      const gc = decoded(decodeGroupContext(hex(e.group_context), 0), "GroupContext")
      const s = await initializeEpoch(initSecret, hex(e.commit_secret), gc, hex(e.psk_secret), impl.kdf)
      assert.equal(toHex(s.joinerSecret), e.joiner_secret)
      assert.equal(toHex(s.welcomeSecret), e.welcome_secret)
      assert.equal(toHex(s.encryptionSecret), e.encryption_secret)
      const ks = s.keySchedule
      assert.deepEqual(
        [ks.initSecret, ks.senderDataSecret, ks.exporterSecret, ks.epochAuthenticator, ks.externalSecret]
          .concat([ks.confirmationKey, ks.membershipKey, ks.resumptionPsk])
          .map(toHex),
        [e.init_secret, e.sender_data_secret, e.exporter_secret, e.epoch_authenticator, e.external_secret].concat([
          e.confirmation_key,
          e.membership_key,
          e.resumption_psk,
        ]),
      )
      // RFC 9420 §8.3: external_pub is the HPKE DeriveKeyPair of external_secret.
      const external = await impl.hpke.deriveKeyPair(ks.externalSecret)
      assert.equal(toHex(await impl.hpke.exportPublicKey(external.publicKey)), e.external_pub)
      initSecret = ks.initSecret
    }
  })
})

type WelcomeVector = {
  cipher_suite: number
  init_priv: string
  key_package: string
  signer_pub: string
  welcome: string
}

describe("welcome.json", () => {
  eachVector<WelcomeVector>("welcome.json", async (v, impl) => {
    const welcome = decoded(decodeMlsMessage(hex(v.welcome), 0), "Welcome")
    const keyPackage = decoded(decodeMlsMessage(hex(v.key_package), 0), "KeyPackage")
    assert.ok(welcome.wireformat === "mls_welcome" && keyPackage.wireformat === "mls_key_package")
    const ref = await makeKeyPackageRef(keyPackage.keyPackage, impl.hash)
    const initKey = await impl.hpke.importPrivateKey(hex(v.init_priv))
    const secrets = await decryptGroupSecrets(initKey, ref, welcome.welcome, impl.hpke)
    assert.ok(secrets !== undefined, "group secrets decrypt with the init key")
    const pskSecret = new Uint8Array(impl.kdf.size)
    const groupInfo = await decryptGroupInfo(welcome.welcome, secrets.joinerSecret, pskSecret, impl)
    assert.ok(groupInfo !== undefined, "group info decrypts")
    assert.equal(await verifyGroupInfoConfirmationTag(groupInfo, secrets.joinerSecret, pskSecret, impl), true)
    assert.equal(await verifyGroupInfoSignature(groupInfo, hex(v.signer_pub), impl.signature), true)
  })
})

type MessageProtectionVector = {
  cipher_suite: number
  group_id: string
  epoch: number
  tree_hash: string
  confirmed_transcript_hash: string
  signature_priv: string
  signature_pub: string
  encryption_secret: string
  sender_data_secret: string
  membership_key: string
  proposal: string
  proposal_priv: string
  proposal_pub: string
  commit: string
  commit_priv: string
  commit_pub: string
  application: string
  application_priv: string
}

describe("message-protection.json", () => {
  eachVector<MessageProtectionVector>("message-protection.json", async (v, impl) => {
    const gc: GroupContext = {
      version: "mls10",
      cipherSuite: suiteName(v.cipher_suite),
      groupId: hex(v.group_id),
      epoch: BigInt(v.epoch),
      treeHash: hex(v.tree_hash),
      confirmedTranscriptHash: hex(v.confirmed_transcript_hash),
      extensions: [],
    }
    const signPub = hex(v.signature_pub)
    const senderDataSecret = hex(v.sender_data_secret)
    const membershipKey = hex(v.membership_key)
    const secretTree = () => createSecretTree(2, hex(v.encryption_secret), impl.kdf)
    const unprotectPrivate = async (pm: PrivateMessage) => {
      const tree = await secretTree()
      const config = defaultKeyRetentionConfig
      return (await unprotectPrivateMessage(senderDataSecret, pm, tree, [], gc, config, impl, signPub)).content.content
    }
    const privateMessage = (message: string) => {
      const m = decoded(decodeMlsMessage(hex(message), 0), "message")
      assert.ok(m.wireformat === "mls_private_message")
      return m.privateMessage
    }
    const unprotectPublic = async (message: string) => {
      const m = decoded(decodeMlsMessage(hex(message), 0), "message")
      assert.ok(m.wireformat === "mls_public_message")
      return (await unprotectPublicMessage(membershipKey, gc, [], m.publicMessage, impl, signPub)).content
    }

    // Messages another implementation protected.
    const application = await unprotectPrivate(privateMessage(v.application_priv))
    assert.ok(application.contentType === "application")
    assert.equal(toHex(application.applicationData), v.application)
    const proposal = await unprotectPrivate(privateMessage(v.proposal_priv))
    assert.ok(proposal.contentType === "proposal")
    assert.equal(toHex(encodeProposal(proposal.proposal)), v.proposal)
    const commit = await unprotectPrivate(privateMessage(v.commit_priv))
    assert.ok(commit.contentType === "commit")
    assert.equal(toHex(encodeCommit(commit.commit)), v.commit)
    const publicProposal = await unprotectPublic(v.proposal_pub)
    assert.ok(publicProposal.contentType === "proposal")
    assert.equal(toHex(encodeProposal(publicProposal.proposal)), v.proposal)
    const publicCommit = await unprotectPublic(v.commit_pub)
    assert.ok(publicCommit.contentType === "commit")
    assert.equal(toHex(encodeCommit(publicCommit.commit)), v.commit)

    // Messages we protect, read back with the vector's keys.
    const signPriv = hex(v.signature_priv)
    const padding = defaultPaddingConfig
    const app = await protectApplicationData(
      signPriv,
      senderDataSecret,
      hex(v.application),
      new Uint8Array(),
      gc,
      await secretTree(),
      1,
      padding,
      impl,
    )
    const appBack = await unprotectPrivate(app.privateMessage)
    assert.ok(appBack.contentType === "application")
    assert.equal(toHex(appBack.applicationData), v.application)

    const p = decoded(decodeProposal(hex(v.proposal), 0), "Proposal")
    const prop = await protectProposal(
      signPriv,
      senderDataSecret,
      p,
      new Uint8Array(),
      gc,
      await secretTree(),
      1,
      padding,
      impl,
    )
    const propBack = await unprotectPrivate(prop.privateMessage)
    assert.ok(propBack.contentType === "proposal")
    assert.equal(toHex(encodeProposal(propBack.proposal)), v.proposal)

    const pub = await protectProposalPublic(signPriv, membershipKey, gc, new Uint8Array(), p, 1, impl)
    const pubBack = (await unprotectPublicMessage(membershipKey, gc, [], pub.publicMessage, impl, signPub)).content
    assert.ok(pubBack.contentType === "proposal")
    assert.equal(toHex(encodeProposal(pubBack.proposal)), v.proposal)
  })
})
