// Interoperability of the node:crypto provider with ts-mls's stock provider inside one group: three members, every
// assignment of {stock, native} to them, through joining, messaging, add and update commits and a state hand-over.
import assert from "node:assert/strict"
import { describe, it } from "node:test"
import {
  createApplicationMessage,
  createCommit,
  createGroup,
  decodeGroupState,
  defaultCapabilities,
  defaultCryptoProvider,
  defaultLifetime,
  emptyPskIndex,
  encodeGroupState,
  generateKeyPackage,
  getCiphersuiteFromName,
  joinGroup,
  processPrivateMessage,
} from "ts-mls"
import type { CiphersuiteImpl, ClientState, KeyPackage, MLSMessage, PrivateKeyPackage } from "ts-mls"
import { defaultClientConfig } from "ts-mls/clientConfig.js"
import { verifyKeyPackage } from "ts-mls/keyPackage.js"
import { defaultSuite, nodeCryptoProvider } from "../../crypto/index.js"
import { toHex } from "./vectors.js"

type Kind = "stock" | "native"

const suite = getCiphersuiteFromName(defaultSuite)
const impls: Record<Kind, CiphersuiteImpl> = {
  stock: await defaultCryptoProvider.getCiphersuiteImpl(suite),
  native: await nodeCryptoProvider.getCiphersuiteImpl(suite),
}
const other = (k: Kind): Kind => (k === "stock" ? "native" : "stock")
const utf8 = (s: string) => new TextEncoder().encode(s)
const text = (b: Uint8Array) => new TextDecoder().decode(b)

interface Member {
  name: string
  kind: Kind
  state: ClientState
}

async function keyPackage(
  name: string,
  kind: Kind,
): Promise<{ publicPackage: KeyPackage; privatePackage: PrivateKeyPackage }> {
  const credential = { credentialType: "basic" as const, identity: utf8(name) }
  return generateKeyPackage(credential, defaultCapabilities(), defaultLifetime, [], impls[kind])
}

function privateMessage(m: MLSMessage) {
  assert.ok(m.wireformat === "mls_private_message")
  return m.privateMessage
}

/** `from` sends `body`; every other member decrypts it with its own provider. */
async function sendToAll(members: Member[], from: Member, body: string): Promise<void> {
  const sent = await createApplicationMessage(from.state, utf8(body), impls[from.kind])
  from.state = sent.newState
  for (const to of members.filter((m) => m !== from)) {
    const got = await processPrivateMessage(to.state, sent.privateMessage, emptyPskIndex, impls[to.kind])
    assert.ok(got.kind === "applicationMessage", `${to.name} gets an application message from ${from.name}`)
    assert.equal(text(got.message), body)
    to.state = got.newState
  }
}

/** `from` commits; every other member processes the commit; all end in the same epoch with the same secrets. */
async function commitToAll(members: Member[], from: Member, commit: MLSMessage, newState: ClientState) {
  from.state = newState
  for (const to of members.filter((m) => m !== from)) {
    const got = await processPrivateMessage(to.state, privateMessage(commit), emptyPskIndex, impls[to.kind])
    assert.ok(got.kind === "newState")
    to.state = got.newState
  }
  assertSameEpoch(members)
}

function assertSameEpoch(members: Member[]): void {
  const [first, ...rest] = members
  assert.ok(first !== undefined)
  for (const m of rest) {
    assert.equal(m.state.groupContext.epoch, first.state.groupContext.epoch, `${m.name} is in ${first.name}'s epoch`)
    assert.equal(toHex(m.state.keySchedule.epochAuthenticator), toHex(first.state.keySchedule.epochAuthenticator))
  }
}

const kinds: Kind[] = ["stock", "native"]
const combinations = kinds.flatMap((a) => kinds.flatMap((b) => kinds.map((c) => [a, b, c] as const)))

describe("stock and native providers in one group", () => {
  for (const [aliceKind, bobKind, carolKind] of combinations) {
    it(`interoperates when alice, bob and carol are ${aliceKind}, ${bobKind} and ${carolKind}`, async () => {
      const alicePackage = await keyPackage("alice", aliceKind)
      const bobPackage = await keyPackage("bob", bobKind)
      const carolPackage = await keyPackage("carol", carolKind)

      // Each KeyPackage verifies under the other provider too.
      for (const [kp, kind] of [
        [bobPackage, bobKind],
        [carolPackage, carolKind],
      ] as const)
        assert.equal(await verifyKeyPackage(kp.publicPackage, impls[other(kind)].signature), true)

      const alice: Member = {
        name: "alice",
        kind: aliceKind,
        state: await createGroup(
          utf8("group"),
          alicePackage.publicPackage,
          alicePackage.privatePackage,
          [],
          impls[aliceKind],
        ),
      }

      // An add Commit for bob and carol, each joining from the Welcome with their own provider.
      const added = await createCommit(
        { state: alice.state, cipherSuite: impls[aliceKind] },
        {
          extraProposals: [bobPackage, carolPackage].map((kp) => ({
            proposalType: "add" as const,
            add: { keyPackage: kp.publicPackage },
          })),
          ratchetTreeExtension: true,
        },
      )
      alice.state = added.newState
      assert.ok(added.welcome !== undefined)
      const join = async (name: string, kind: Kind, kp: typeof bobPackage): Promise<Member> => ({
        name,
        kind,
        state: await joinGroup(added.welcome!, kp.publicPackage, kp.privatePackage, emptyPskIndex, impls[kind]),
      })
      const bob = await join("bob", bobKind, bobPackage)
      const carol = await join("carol", carolKind, carolPackage)
      const members = [alice, bob, carol]
      assertSameEpoch(members)

      for (const from of members) await sendToAll(members, from, `hello from ${from.name}`)

      // Update Commits (full path, new leaf keys) from bob then carol.
      for (const from of [bob, carol]) {
        const update = await createCommit({ state: from.state, cipherSuite: impls[from.kind] })
        await commitToAll(members, from, update.commit, update.newState)
      }
      assert.equal(alice.state.groupContext.epoch, 3n)

      // Carol's stored state carries on under the other provider.
      const [decoded] = decodeGroupState(encodeGroupState(carol.state), 0) ?? assert.fail("group state decodes")
      carol.state = { ...decoded, clientConfig: defaultClientConfig }
      carol.kind = other(carol.kind)
      await sendToAll(members, carol, "carol, restored")
      const update = await createCommit({ state: carol.state, cipherSuite: impls[carol.kind] })
      await commitToAll(members, carol, update.commit, update.newState)
      const fromAlice = await createCommit({ state: alice.state, cipherSuite: impls[alice.kind] })
      await commitToAll(members, alice, fromAlice.commit, fromAlice.newState)
      await sendToAll(members, bob, "after the hand-over")
    })
  }
})
