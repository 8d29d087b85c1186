// RFC 9420 passive-client vectors through the node:crypto provider: join from a Welcome produced by another
// implementation, then follow every epoch and match its epoch_authenticator.
import assert from "node:assert/strict"
import { describe, it } from "node:test"
import { bytesToBase64, joinGroup, makePskIndex, processPrivateMessage, processPublicMessage } from "ts-mls"
import type { CiphersuiteImpl, ClientState, PrivateKeyPackage } from "ts-mls"
import { decodeMlsMessage } from "ts-mls/message.js"
import { decodeRatchetTree } from "ts-mls/ratchetTree.js"
import { hex, implFor, loadVectors, providersFor, toHex } from "./vectors.js"

type PassiveClientVector = {
  cipher_suite: number
  external_psks: { psk_id: string; psk: string }[]
  key_package: string
  signature_priv: string
  encryption_priv: string
  init_priv: string
  welcome: string
  ratchet_tree: string | null
  initial_epoch_authenticator: string
  epochs: { proposals: string[]; commit: string; epoch_authenticator: string }[]
}

const probe = new TextEncoder().encode("probe")

async function followEpochs(v: PassiveClientVector, impl: CiphersuiteImpl): Promise<void> {
  const keyPackage = decodeMlsMessage(hex(v.key_package), 0)?.[0]
  const welcome = decodeMlsMessage(hex(v.welcome), 0)?.[0]
  assert.ok(keyPackage?.wireformat === "mls_key_package" && welcome?.wireformat === "mls_welcome")

  // The vector's private keys open what is sealed to its KeyPackage's public keys, and sign for its leaf.
  const kp = keyPackage.keyPackage
  for (const [pub, priv] of [
    [kp.initKey, v.init_priv],
    [kp.leafNode.hpkePublicKey, v.encryption_priv],
  ] as const) {
    const sealed = await impl.hpke.seal(await impl.hpke.importPublicKey(pub), probe, probe)
    const opened = await impl.hpke.open(await impl.hpke.importPrivateKey(hex(priv)), sealed.enc, sealed.ct, probe)
    assert.equal(toHex(opened), toHex(probe))
  }
  const signature = await impl.signature.sign(hex(v.signature_priv), probe)
  assert.equal(await impl.signature.verify(kp.leafNode.signaturePublicKey, probe, signature), true)

  const privateKeys: PrivateKeyPackage = {
    hpkePrivateKey: hex(v.encryption_priv),
    initPrivateKey: hex(v.init_priv),
    signaturePrivateKey: hex(v.signature_priv),
  }
  const tree = v.ratchet_tree === null ? undefined : decodeRatchetTree(hex(v.ratchet_tree), 0)?.[0]
  const psks = Object.fromEntries(v.external_psks.map((p) => [bytesToBase64(hex(p.psk_id)), hex(p.psk)]))

  let state: ClientState = await joinGroup(
    welcome.welcome,
    keyPackage.keyPackage,
    privateKeys,
    makePskIndex(undefined, psks),
    impl,
    tree,
  )
  assert.equal(toHex(state.keySchedule.epochAuthenticator), v.initial_epoch_authenticator)

  for (const [n, epoch] of v.epochs.entries()) {
    for (const message of [...epoch.proposals, epoch.commit]) {
      const m = decodeMlsMessage(hex(message), 0)?.[0]
      const pskIndex = makePskIndex(state, psks)
      if (m?.wireformat === "mls_private_message") {
        state = (await processPrivateMessage(state, m.privateMessage, pskIndex, impl)).newState
      } else if (m?.wireformat === "mls_public_message") {
        state = (await processPublicMessage(state, m.publicMessage, pskIndex, impl)).newState
      } else {
        assert.fail(`epoch ${n}: not a handshake message`)
      }
    }
    assert.equal(toHex(state.keySchedule.epochAuthenticator), epoch.epoch_authenticator, `epoch ${n}`)
  }
}

for (const file of ["passive-client-welcome.json", "passive-client-handling-commit.json"]) {
  describe(file, () => {
    for (const [index, v] of loadVectors<PassiveClientVector>(file).entries()) {
      for (const kind of providersFor(v.cipher_suite)) {
        it(`follows every epoch of entry ${index} (suite ${v.cipher_suite}) through the ${kind} provider`, async () => {
          await followEpochs(v, await implFor(kind, v.cipher_suite))
        })
      }
    }
  })
}
