// The ts-mls patches (patches/ts-mls+1.6.4.patch) change no result: the label caches of expandWithLabel, the
// duplicate-Add check of validateProposals, the encodings kept by value identity or from decoding and the secret tree
// without parent ratchets, checked against their definitions; and the fixes: a Commit with several invalid
// proposals no longer leaves unhandled rejections behind, only canonical encodings are decoded, and dropping an old
// epoch's receiver data no longer overflows the stack in a big group.
import assert from "node:assert/strict"
import { describe, it } from "node:test"
import {
  createCommit,
  createGroup,
  defaultCapabilities,
  defaultLifetime,
  emptyPskIndex,
  generateKeyPackage,
  generateKeyPackageWithKey,
  joinGroup,
  processPrivateMessage,
} from "ts-mls"
import type { CiphersuiteImpl, KeyPackage, LeafNode, RatchetTree } from "ts-mls"
import { defaultClientConfig } from "ts-mls/clientConfig.js"
import { decodeUint16 } from "ts-mls/codec/number.js"
import { decodeVarLenType } from "ts-mls/codec/variableLength.js"
import { decodeCommit, encodeCommit } from "ts-mls/commit.js"
import { decodeCiphersuite } from "ts-mls/crypto/ciphersuite.js"
import { expandWithLabel } from "ts-mls/crypto/kdf.js"
import { decodeKeyPackage, encodeKeyPackage, verifyKeyPackage } from "ts-mls/keyPackage.js"
import { encodeLeafNode, verifyLeafNodeSignatureKeyPackage } from "ts-mls/leafNode.js"
import { CodecError, CryptoVerificationError, ValidationError } from "ts-mls/mlsError.js"
import { decodeProtocolVersion } from "ts-mls/protocolVersion.js"
import { createSecretTree, expandedLeaf } from "ts-mls/secretTree.js"
import { getSuite } from "../../crypto/index.js"
import { toHex } from "./vectors.js"

const cs: CiphersuiteImpl = await getSuite()
const utf8 = (s: string) => new TextEncoder().encode(s)
const credential = (name: string) => ({ credentialType: "basic" as const, identity: utf8(name) })

/** RFC 9420 §8: KDFLabel = uint16 length || opaque label<V> || opaque context<V>, short vectors only. */
function kdfLabel(length: number, label: string, context: Uint8Array): Uint8Array {
  const l = utf8(`MLS 1.0 ${label}`)
  if (l.length >= 64 || context.length >= 64) throw new Error("test helper handles 1-byte lengths only")
  return Uint8Array.from([length >> 8, length & 0xff, l.length, ...l, context.length, ...context])
}

describe("ts-mls patch: expandWithLabel label caches", () => {
  it("gives RFC 9420's ExpandWithLabel for repeated, new and many labels, lengths and contexts", async () => {
    const secret = Uint8Array.from({ length: 32 }, (_, i) => i)
    const labels = [...Array.from({ length: 80 }, (_, i) => `label ${i}`), "tree", "application", "handshake"]
    for (let round = 0; round < 2; round++)
      for (const label of labels)
        for (const length of [16, 32])
          for (const context of [new Uint8Array(), utf8("left"), utf8(label)]) {
            const want = await cs.kdf.expand(secret, kdfLabel(length, label, context), length)
            assert.equal(toHex(await expandWithLabel(secret, label, context, length, cs.kdf)), toHex(want))
          }
  })
})

describe("ts-mls patch: duplicate Adds", () => {
  async function group() {
    const a = await generateKeyPackage(credential("alice"), defaultCapabilities(), defaultLifetime, [], cs)
    return createGroup(utf8("patch"), a.publicPackage, a.privatePackage, [], cs)
  }
  const add = (keyPackage: Awaited<ReturnType<typeof generateKeyPackage>>["publicPackage"]) => ({
    proposalType: "add" as const,
    add: { keyPackage },
  })

  it("rejects two Adds whose KeyPackages share a signature key, and accepts distinct ones", async () => {
    const state = await group()
    const keys = await cs.signature.keygen()
    const kps = []
    for (const name of ["bob", "carol", "dave"])
      kps.push(await generateKeyPackageWithKey(credential(name), defaultCapabilities(), defaultLifetime, [], keys, cs))
    const other = await generateKeyPackage(credential("erin"), defaultCapabilities(), defaultLifetime, [], cs)
    await assert.rejects(
      createCommit(
        { state, cipherSuite: cs },
        { extraProposals: [add(kps[0]!.publicPackage), add(other.publicPackage), add(kps[2]!.publicPackage)] },
      ),
      ValidationError,
    )
    const ok = await createCommit(
      { state, cipherSuite: cs },
      { extraProposals: [add(kps[1]!.publicPackage), add(other.publicPackage)] },
    )
    assert.equal(ok.newState.ratchetTree.filter((n) => n?.nodeType === "leaf").length, 3)
  })

  it("rejects an Add of a member's signature key, epochs after it joined (the tree's key counts are kept)", async () => {
    const keys = await cs.signature.keygen()
    const bob = await generateKeyPackageWithKey(credential("bob"), defaultCapabilities(), defaultLifetime, [], keys, cs)
    let state = (
      await createCommit({ state: await group(), cipherSuite: cs }, { extraProposals: [add(bob.publicPackage)] })
    ).newState
    for (const name of ["carol", "dave"]) {
      const kp = await generateKeyPackage(credential(name), defaultCapabilities(), defaultLifetime, [], cs)
      state = (await createCommit({ state, cipherSuite: cs }, { extraProposals: [add(kp.publicPackage)] })).newState
      const again = await generateKeyPackageWithKey(
        credential("bob"),
        defaultCapabilities(),
        defaultLifetime,
        [],
        keys,
        cs,
      )
      await assert.rejects(
        createCommit({ state, cipherSuite: cs }, { extraProposals: [add(again.publicPackage)] }),
        (e: unknown) => e instanceof ValidationError && /already in the group/.test(e.message),
      )
    }
  })

  it("still asks a custom compareKeyPackages", async () => {
    let calls = 0
    const state = {
      ...(await group()),
      clientConfig: {
        ...defaultClientConfig,
        keyPackageEqualityConfig: {
          ...defaultClientConfig.keyPackageEqualityConfig,
          compareKeyPackages: () => {
            calls++
            return true
          },
        },
      },
    }
    const bob = await generateKeyPackage(credential("bob"), defaultCapabilities(), defaultLifetime, [], cs)
    const carol = await generateKeyPackage(credential("carol"), defaultCapabilities(), defaultLifetime, [], cs)
    await assert.rejects(
      createCommit({ state, cipherSuite: cs }, { extraProposals: [add(bob.publicPackage), add(carol.publicPackage)] }),
      ValidationError,
    )
    assert.ok(calls > 0)
  })

  it("reports a bad leaf node signature before a bad KeyPackage signature, as stock ts-mls does", async () => {
    const state = await group()
    const bob = await generateKeyPackage(credential("bob"), defaultCapabilities(), defaultLifetime, [], cs)
    const carol = await generateKeyPackage(credential("carol"), defaultCapabilities(), defaultLifetime, [], cs)
    const flipped = (b: Uint8Array) => b.map((x, i) => (i === 0 ? x ^ 1 : x))
    const badKp = { ...bob.publicPackage, signature: flipped(bob.publicPackage.signature) }
    const badBoth = {
      ...badKp,
      leafNode: { ...bob.publicPackage.leafNode, signature: flipped(bob.publicPackage.leafNode.signature) },
    }
    const attempt = (kp: typeof badKp) =>
      createCommit({ state, cipherSuite: cs }, { extraProposals: [add(carol.publicPackage), add(kp)] })
    await assert.rejects(attempt(badKp), (e: unknown) => {
      assert.ok(e instanceof CryptoVerificationError)
      assert.match(e.message, /Invalid keypackage signature/)
      return true
    })
    await assert.rejects(attempt(badBoth), (e: unknown) => {
      assert.ok(e instanceof CryptoVerificationError)
      assert.match(e.message, /Could not verify leaf node signature/)
      return true
    })
  })
})

describe("ts-mls patch: encodings kept by value identity", () => {
  it("writes a KeyPackage, a leaf node and a Commit as an equal fresh copy would, and a changed copy anew", async () => {
    const alice = await generateKeyPackage(credential("alice"), defaultCapabilities(), defaultLifetime, [], cs)
    const bob = await generateKeyPackage(credential("bob"), defaultCapabilities(), defaultLifetime, [], cs)
    const kp = alice.publicPackage
    // Made here, so its leaf node kept its encoding when it was signed (signLeafNodeKeyPackage).
    const first = encodeKeyPackage(kp)
    // Kept: the same bytes again, and inside a Commit that carries the same object.
    assert.equal(toHex(encodeKeyPackage(kp)), toHex(first))
    // A structurally equal copy is a different object: encoded afresh, to the same bytes.
    assert.equal(toHex(encodeKeyPackage(structuredClone(kp))), toHex(first))
    assert.equal(toHex(encodeLeafNode(kp.leafNode)), toHex(encodeLeafNode(structuredClone(kp.leafNode))))
    // A changed copy (how ts-mls changes values) gets its own encoding.
    const resigned = { ...kp, signature: bob.publicPackage.signature }
    assert.notEqual(toHex(encodeKeyPackage(resigned)), toHex(first))
    assert.equal(toHex(encodeKeyPackage(resigned)), toHex(encodeKeyPackage(structuredClone(resigned))))
    // The encoding is kept by identity, so a value whose encoding is kept is deep-frozen: it cannot be changed in
    // place and then written (or signed, or checked) as its old bytes.
    const written = structuredClone(kp)
    const kept = toHex(encodeKeyPackage(written))
    assert.throws(() => {
      written.signature = bob.publicPackage.signature
    }, TypeError)
    assert.throws(() => {
      written.leafNode.lifetime.notAfter = 0n
    }, TypeError)
    assert.throws(() => {
      written.leafNode.extensions.push({ extensionType: "application_id", extensionData: new Uint8Array() })
    }, TypeError)
    assert.equal(toHex(encodeKeyPackage(written)), kept)

    const commit = {
      proposals: [
        { proposalOrRefType: "proposal" as const, proposal: { proposalType: "add" as const, add: { keyPackage: kp } } },
      ],
      path: undefined,
    }
    const commitBytes = encodeCommit(commit)
    assert.equal(toHex(encodeCommit(commit)), toHex(commitBytes))
    assert.equal(toHex(encodeCommit(structuredClone(commit))), toHex(commitBytes))
    assert.ok(toHex(commitBytes).includes(toHex(first)), "the Commit carries the KeyPackage's encoding")
  })
})

describe("ts-mls patch: several invalid proposals in one Commit", () => {
  it("refuses the Commit without an unhandled rejection, when creating it and when a member processes it", async () => {
    const unhandled: unknown[] = []
    const onUnhandled = (reason: unknown) => unhandled.push(reason)
    process.on("unhandledRejection", onUnhandled)
    try {
      const alice = await generateKeyPackage(credential("alice"), defaultCapabilities(), defaultLifetime, [], cs)
      const bob = await generateKeyPackage(credential("bob"), defaultCapabilities(), defaultLifetime, [], cs)
      const start = await createGroup(utf8("bad adds"), alice.publicPackage, alice.privatePackage, [], cs)
      const withBob = await createCommit(
        { state: start, cipherSuite: cs },
        {
          extraProposals: [{ proposalType: "add", add: { keyPackage: bob.publicPackage } }],
          ratchetTreeExtension: true,
        },
      )
      const bobState = await joinGroup(withBob.welcome!, bob.publicPackage, bob.privatePackage, emptyPskIndex, cs)
      // Three KeyPackages whose signatures do not verify.
      const forged = []
      for (const name of ["carol", "dave", "erin"]) {
        const kp = (await generateKeyPackage(credential(name), defaultCapabilities(), defaultLifetime, [], cs))
          .publicPackage
        const signature = kp.signature.slice()
        signature[0]! ^= 1
        forged.push({ proposalType: "add" as const, add: { keyPackage: { ...kp, signature } } })
      }
      await assert.rejects(
        createCommit({ state: withBob.newState, cipherSuite: cs }, { extraProposals: forged }),
        CryptoVerificationError,
      )
      // A committer that skips the checks (its verify says yes to everything) sends them anyway; Bob refuses.
      const lying: CiphersuiteImpl = { ...cs, signature: { ...cs.signature, verify: async () => true } }
      const sent = await createCommit({ state: withBob.newState, cipherSuite: lying }, { extraProposals: forged })
      assert.equal(sent.commit.wireformat, "mls_private_message")
      if (sent.commit.wireformat !== "mls_private_message") return
      // The new epoch is computed while the checks run (processCommit's speculation), but the callback is never
      // asked about a Commit whose checks failed.
      const asked: unknown[] = []
      await assert.rejects(
        processPrivateMessage(bobState, sent.commit.privateMessage, emptyPskIndex, cs, (incoming) => {
          asked.push(incoming)
          return "accept"
        }),
        CryptoVerificationError,
      )
      assert.deepEqual(asked, [])
      // Node reports unhandled rejections once the microtasks have run: after a turn of the event loop.
      await new Promise((resolve) => setImmediate(resolve))
      assert.deepEqual(unhandled, [])
    } finally {
      process.off("unhandledRejection", onUnhandled)
    }
  })
})

/**
 * `cs`, recording the secrets it makes (the key-schedule and secret-tree outputs of `kdf.expand`, by RFC 9420 label,
 * and exported HPKE private keys) and holding back signature checks by `heldKeys` until `release()`.
 */
function recordingSuite(cs: CiphersuiteImpl, heldKeys: Uint8Array[]) {
  // The secrets ts-mls keeps in a state or zeroes once used (§8: key schedule; the new secret tree holds a copy of
  // the encryption secret, zeroed with the tree).
  const epochLabels = new Set(["init", "sender data", "encryption", "exporter", "external", "confirm", "membership"])
  for (const label of ["resumption", "authentication", "joiner", "welcome"]) epochLabels.add(label)
  const secrets: { label: string; bytes: Uint8Array }[] = []
  let release = () => {}
  const released = new Promise<void>((resolve) => (release = resolve))
  const held = new Set(heldKeys.map(toHex))
  const suite: CiphersuiteImpl = {
    ...cs,
    kdf: {
      ...cs.kdf,
      async expand(prk, info, length) {
        const out = await cs.kdf.expand(prk, info, length)
        // KDFLabel (§8): uint16 length, opaque label<V> ("MLS 1.0 " + label), opaque context<V>; short vectors here.
        const label = new TextDecoder().decode(info.subarray(3, 3 + info[2]!)).replace(/^MLS 1\.0 /, "")
        // Ratchet roots (§9 "application"/"handshake") are not recorded: the secret tree is expanded lazily, so those
        // made here are the current epoch's, for the Commit's own PrivateMessage, not the new epoch's.
        if (epochLabels.has(label)) secrets.push({ label, bytes: out })
        // The new epoch's key schedule is the last thing a speculation derives (its secret tree is expanded lazily,
        // on first use); once this turn's work is done, the held checks may fail.
        if (label === "encryption") setImmediate(release)
        return out
      },
    },
    hpke: {
      ...cs.hpke,
      async exportPrivateKey(key) {
        const out = await cs.hpke.exportPrivateKey(key)
        secrets.push({ label: "private key", bytes: out })
        return out
      },
    },
    signature: {
      ...cs.signature,
      async verify(publicKey, message, signature) {
        if (held.has(toHex(publicKey))) await released
        return cs.signature.verify(publicKey, message, signature)
      },
    },
  }
  const nonZero = () => secrets.filter((s) => s.bytes.some((b) => b !== 0)).map((s) => s.label)
  return { suite, secrets, nonZero }
}

describe("ts-mls patch: a new epoch computed while a Commit's checks ran is zeroed when the Commit is refused", () => {
  async function setUp() {
    const kp = async (name: string) =>
      await generateKeyPackage(credential(name), defaultCapabilities(), defaultLifetime, [], cs)
    const [alice, bob, carol] = [await kp("alice"), await kp("bob"), await kp("carol")]
    const start = await createGroup(utf8("zeroing"), alice.publicPackage, alice.privatePackage, [], cs)
    const added = await createCommit(
      { state: start, cipherSuite: cs },
      {
        extraProposals: [bob, carol].map((m) => ({
          proposalType: "add" as const,
          add: { keyPackage: m.publicPackage },
        })),
        ratchetTreeExtension: true,
      },
    )
    const bobState = await joinGroup(added.welcome!, bob.publicPackage, bob.privatePackage, emptyPskIndex, cs)
    // Removing Carol makes the Commit carry a path (new private keys); the two Adds' KeyPackages have bad signatures.
    const forged = []
    for (const name of ["dave", "erin"]) {
      const { publicPackage } = await kp(name)
      const signature = publicPackage.signature.slice()
      signature[0]! ^= 1
      forged.push({ proposalType: "add" as const, add: { keyPackage: { ...publicPackage, signature } } })
    }
    const proposals = [{ proposalType: "remove" as const, remove: { removed: 2 } }, ...forged]
    const forgedKeys = forged.map((p) => p.add.keyPackage.leafNode.signaturePublicKey)
    return { aliceState: added.newState, bobState, proposals, forgedKeys }
  }

  it("zeroes the key schedule, secret tree and path keys of a Commit being created", async () => {
    const { aliceState, proposals, forgedKeys } = await setUp()
    const { suite, secrets, nonZero } = recordingSuite(cs, forgedKeys)
    await assert.rejects(
      createCommit({ state: aliceState, cipherSuite: suite }, { extraProposals: proposals }),
      CryptoVerificationError,
    )
    const labels = new Set(secrets.map((s) => s.label))
    for (const label of ["confirm", "exporter", "encryption", "private key"]) assert.ok(labels.has(label))
    assert.deepEqual(nonZero(), [])
  })

  it("zeroes the key schedule, secret tree and path keys of a received Commit", async () => {
    const { aliceState, bobState, proposals, forgedKeys } = await setUp()
    // A committer that skips the checks (its verify says yes to everything) sends the Commit anyway.
    const lying: CiphersuiteImpl = { ...cs, signature: { ...cs.signature, verify: async () => true } }
    const sent = await createCommit({ state: aliceState, cipherSuite: lying }, { extraProposals: proposals })
    assert.ok(sent.commit.wireformat === "mls_private_message")
    const { suite, secrets, nonZero } = recordingSuite(cs, forgedKeys)
    await assert.rejects(
      processPrivateMessage(bobState, sent.commit.privateMessage, emptyPskIndex, suite),
      CryptoVerificationError,
    )
    const labels = new Set(secrets.map((s) => s.label))
    for (const label of ["confirm", "exporter", "encryption", "private key"]) assert.ok(labels.has(label))
    assert.deepEqual(nonZero(), [])
  })
})

describe("ts-mls patch: decoding takes canonical encodings only, and keeps them", () => {
  it("refuses a length not in its fewest bytes and an optional's presence octet other than 0 or 1 (RFC 9420 §2.1)", async () => {
    const kp = (await generateKeyPackage(credential("alice"), defaultCapabilities(), defaultLifetime, [], cs))
      .publicPackage
    const bytes = encodeKeyPackage(kp)
    assert.equal(bytes[4], 32, "init_key's length, after the version and the cipher suite")
    const withLength = (length: number[]) => Uint8Array.from([...bytes.subarray(0, 4), ...length, ...bytes.subarray(5)])
    assert.equal(toHex(encodeKeyPackage(decodeKeyPackage(withLength([32]), 0)![0])), toHex(bytes))
    for (const length of [
      [0x40, 32],
      [0x80, 0, 0, 32],
    ])
      assert.throws(
        () => decodeKeyPackage(withLength(length), 0),
        (e: unknown) => {
          assert.ok(e instanceof CodecError)
          assert.match(e.message, /not in its minimal encoding/)
          return true
        },
      )
    // A Commit without proposals: an empty vector, then the presence octet of its optional path.
    assert.deepEqual(decodeCommit(Uint8Array.from([0, 0]), 0)?.[0], { proposals: [], path: undefined })
    for (const bad of [[0, 2], [0, 0xff], [0]]) assert.equal(decodeCommit(Uint8Array.from(bad), 0), undefined)
  })

  it("reads a vector of uint16s (capabilities) in one loop with the results, refusals and errors of the item decoder", () => {
    // decodeVarLenType takes its one-loop path for decodeUint16 and enum decoders built on it; a wrapper takes the
    // general path, item by item. Both are given the same bytes: well-formed vectors, odd lengths, unknown protocol
    // versions, non-minimal and overlong lengths, and random bytes.
    const outcome = (decode: () => unknown) => {
      try {
        return { value: decode() }
      } catch (e) {
        return { error: e instanceof CodecError ? e.message : String(e) }
      }
    }
    let seed = 19
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % 256
    const cases: number[][] = [
      [6, 0, 1, 0, 2, 0x0a, 0x0a],
      [4, 0, 1, 0, 9],
      [3, 0, 1, 0],
      [0x40, 2, 0, 1],
      [0x80, 0, 0, 2, 0, 1],
      [10, 0, 1],
      [],
      ...Array.from({ length: 2000 }, () => Array.from({ length: random() % 12 }, random)),
    ]
    const pairs = [
      [decodeVarLenType(decodeUint16), decodeVarLenType((b: Uint8Array, o: number) => decodeUint16(b, o))],
      [
        decodeVarLenType(decodeProtocolVersion),
        decodeVarLenType((b: Uint8Array, o: number) => decodeProtocolVersion(b, o)),
      ],
      [decodeVarLenType(decodeCiphersuite), decodeVarLenType((b: Uint8Array, o: number) => decodeCiphersuite(b, o))],
    ] as const
    for (const bytes of cases)
      for (const [oneLoop, itemByItem] of pairs)
        for (const offset of [0, 1]) {
          const input = Uint8Array.from(bytes)
          assert.deepEqual(
            outcome(() => oneLoop(input, offset)),
            outcome(() => itemByItem(input, offset)),
            `bytes ${toHex(input)} at ${offset}`,
          )
        }
    const version = decodeVarLenType(decodeProtocolVersion)(Uint8Array.from([2, 0, 1]), 0)
    assert.deepEqual(version, [["mls10"], 3])
  })

  it("writes a decoded Commit, KeyPackage and leaf node as the bytes they came from, and freezes them", async () => {
    const bob = (await generateKeyPackage(credential("bob"), defaultCapabilities(), defaultLifetime, [], cs))
      .publicPackage
    const carol = (await generateKeyPackage(credential("carol"), defaultCapabilities(), defaultLifetime, [], cs))
      .publicPackage
    const add = (keyPackage: typeof bob) => ({
      proposalOrRefType: "proposal" as const,
      proposal: { proposalType: "add" as const, add: { keyPackage } },
    })
    const wire = encodeCommit({ proposals: [add(bob), add(carol)], path: undefined })
    const addedKeyPackage = (commit: NonNullable<ReturnType<typeof decodeCommit>>[0], i: number) => {
      const p = commit.proposals[i]
      assert.ok(p?.proposalOrRefType === "proposal" && p.proposal.proposalType === "add")
      return p.proposal.add.keyPackage
    }

    const decoded = decodeCommit(wire.slice(), 0)![0]
    assert.equal(toHex(encodeCommit(decoded)), toHex(wire))
    assert.equal(toHex(encodeKeyPackage(addedKeyPackage(decoded, 0))), toHex(encodeKeyPackage(bob)))
    assert.equal(toHex(encodeLeafNode(addedKeyPackage(decoded, 1).leafNode)), toHex(encodeLeafNode(carol.leafNode)))
    // Only canonical bytes were accepted, so a fresh encoding of an equal copy is those bytes too.
    assert.equal(toHex(encodeCommit(structuredClone(decoded))), toHex(wire))
    // A decoded value is deep-frozen; its byte fields (which JavaScript cannot freeze) are views of the very bytes
    // kept as its encoding, so writing into one changes the value and the bytes it is written, signed or checked as
    // alike: they still agree with a fresh encoding.
    const changed = addedKeyPackage(decoded, 0)
    assert.throws(() => {
      changed.signature = carol.signature
    }, TypeError)
    assert.throws(() => {
      changed.leafNode.credential = credential("mallory")
    }, TypeError)
    changed.signature[0]! ^= 1
    changed.leafNode.signaturePublicKey[0]! ^= 1
    assert.notEqual(toHex(encodeKeyPackage(changed)), toHex(encodeKeyPackage(bob)))
    assert.equal(toHex(encodeKeyPackage(changed)), toHex(encodeKeyPackage(structuredClone(changed))))
    assert.equal(toHex(encodeCommit(decoded)), toHex(encodeCommit(structuredClone(decoded))))

    // The signed parts (KeyPackageTBS, LeafNodeTBS) are cut from the kept bytes: valid signatures verify, and one
    // flipped bit in a received signature does not.
    const fresh = addedKeyPackage(decodeCommit(wire, 0)![0], 1)
    assert.equal(await verifyKeyPackage(fresh, cs.signature), true)
    assert.equal(await verifyLeafNodeSignatureKeyPackage(fresh.leafNode, cs.signature), true)
    const kpBytes = encodeKeyPackage(carol)
    const flipKp = kpBytes.slice()
    flipKp[flipKp.length - 1]! ^= 1 // the KeyPackage's signature is its last field
    assert.equal(await verifyKeyPackage(decodeKeyPackage(flipKp, 0)![0], cs.signature), false)
    const leafBytes = encodeLeafNode(carol.leafNode)
    const leafEnd = toHex(kpBytes).indexOf(toHex(leafBytes)) / 2 + leafBytes.length
    const flipLeaf = kpBytes.slice()
    flipLeaf[leafEnd - 1]! ^= 1 // the leaf node's signature is its last field
    const forgedLeaf = decodeKeyPackage(flipLeaf, 0)![0]
    assert.equal(await verifyLeafNodeSignatureKeyPackage(forgedLeaf.leafNode, cs.signature), false)
  })
})

describe("ts-mls patch: tree hashes kept between epochs", () => {
  it("hashes a tree changed node by node, in place or copied, as hashing it afresh does", async () => {
    const { treeHash, treeHashRoot } = await import("ts-mls/treeHash.js")
    const { toNodeIndex } = await import("ts-mls/treemath.js")
    const kps: Awaited<ReturnType<typeof generateKeyPackage>>[] = []
    for (const name of ["alice", "bob", "carol", "dave", "erin"])
      kps.push(await generateKeyPackage(credential(name), defaultCapabilities(), defaultLifetime, [], cs))
    const leaf = (i: number) => ({ nodeType: "leaf" as const, leaf: kps[i]!.publicPackage.leafNode })
    const parent = (key: number) => ({
      nodeType: "parent" as const,
      parent: { hpkePublicKey: Uint8Array.of(key), parentHash: new Uint8Array(), unmergedLeaves: [] },
    })
    // A fresh copy of every node: what nothing can have been kept for.
    const fresh = (tree: (typeof trees)[number]) =>
      tree.map((n) =>
        n === undefined ? undefined : n.nodeType === "leaf" ? { ...n } : { ...n, parent: { ...n.parent } },
      )
    const t0: RatchetTree = [leaf(0), parent(1), leaf(1), undefined, leaf(2), undefined, undefined]
    const t1 = t0.slice()
    t1[6] = leaf(3)
    t1[5] = parent(2)
    const t2 = t1.slice()
    t2[2] = undefined
    const trees = [t0, t1, t2, t0]
    for (const tree of trees) {
      const want = toHex(await treeHashRoot(fresh(tree), cs.hash))
      assert.equal(toHex(await treeHashRoot(tree, cs.hash)), want)
      assert.equal(toHex(await treeHash(tree, toNodeIndex(3), cs.hash)), want)
      assert.equal(
        toHex(await treeHash(tree, toNodeIndex(5), cs.hash)),
        toHex(await treeHash(fresh(tree), toNodeIndex(5), cs.hash)),
      )
    }
    // Changed in place after being hashed: the node comparison sees it.
    t2[4] = leaf(4)
    assert.equal(toHex(await treeHashRoot(t2, cs.hash)), toHex(await treeHashRoot(fresh(t2), cs.hash)))
  })

  it("hashes what RFC 9420 §7.8 says, with TreeHashInputs as ts-mls's encoder writes them", async () => {
    const { treeHashRoot, encodeTreeHashInput } = await import("ts-mls/treeHash.js")
    const kps = await Promise.all(
      ["alice", "bob", "carol"].map((name) =>
        generateKeyPackage(credential(name), defaultCapabilities(), defaultLifetime, [], cs),
      ),
    )
    const leaf = (i: number) => ({ nodeType: "leaf" as const, leaf: kps[i]!.publicPackage.leafNode })
    // Parent nodes with and without a parent hash and unmerged leaves; a blank leaf and blank parents.
    const parent = (key: number, parentHash: Uint8Array, unmergedLeaves: number[]) => ({
      nodeType: "parent" as const,
      parent: { hpkePublicKey: Uint8Array.from({ length: 32 }, () => key), parentHash, unmergedLeaves },
    })
    const tree: RatchetTree = [
      leaf(0),
      parent(
        1,
        Uint8Array.from({ length: 32 }, (_, i) => i),
        [1],
      ),
      leaf(1),
      parent(3, new Uint8Array(), []),
      undefined,
      undefined,
      leaf(2),
    ]
    const reference = async (i: number): Promise<Uint8Array> => {
      const node = tree[i]
      if (i % 2 === 0)
        return cs.hash.digest(
          encodeTreeHashInput({
            nodeType: "leaf",
            leafIndex: i / 2,
            leafNode: node?.nodeType === "leaf" ? node.leaf : undefined,
          }),
        )
      const level = Math.log2((i ^ (i + 1)) + 1) - 1
      return cs.hash.digest(
        encodeTreeHashInput({
          nodeType: "parent",
          parentNode: node?.nodeType === "parent" ? node.parent : undefined,
          leftHash: await reference(i - (1 << (level - 1))),
          rightHash: await reference(i + (1 << (level - 1))),
        }),
      )
    }
    assert.equal(toHex(await treeHashRoot(tree, cs.hash)), toHex(await reference(3)))
  })
})

describe("ts-mls patch: secret tree", () => {
  it("is expanded lazily: a leaf's ratchets are RFC 9420's, and each expanded node keeps no secret", async () => {
    const encryptionSecret = Uint8Array.from({ length: 32 }, (_, i) => 255 - i)
    const fresh = await createSecretTree(4, encryptionSecret, cs.kdf)
    assert.equal(fresh.length, 7)
    // Only the root (node 3) holds a secret: the encryption secret, to be expanded.
    assert.deepEqual(
      fresh.map((n) => n.handshake.secret.length),
      [0, 0, 0, 32, 0, 0, 0],
    )
    // Leaf 2 (node 4): root 3 -> right child 5 -> its left child 4 (RFC 9420 §9: tree_node_[left/right]_secret).
    const expand = (secret: Uint8Array, label: string, context: Uint8Array) =>
      cs.kdf.expand(secret, kdfLabel(32, label, context), 32)
    const node5 = await expand(encryptionSecret, "tree", utf8("right"))
    const node4 = await expand(node5, "tree", utf8("left"))
    const [tree, leaf] = await expandedLeaf(fresh, 4, cs.kdf)
    assert.equal(toHex(leaf.application.secret), toHex(await expand(node4, "application", new Uint8Array())))
    assert.equal(toHex(leaf.handshake.secret), toHex(await expand(node4, "handshake", new Uint8Array())))
    // The root and node 5 are spent; node 1 (left of the root) and node 6 (right of 5) wait with their tree secrets.
    assert.deepEqual(
      tree.map((n) => n.handshake.secret.length),
      [0, 32, 0, 0, 32, 0, 32],
    )
    assert.equal(toHex(tree[1]!.handshake.secret), toHex(await expand(encryptionSecret, "tree", utf8("left"))))
    assert.equal(toHex(tree[6]!.handshake.secret), toHex(await expand(node5, "tree", utf8("right"))))
    assert.equal(fresh[3]!.handshake.secret.length, 32, "the tree it came from is unchanged")
    // A second look at the same leaf derives nothing more: the same node.
    assert.equal((await expandedLeaf(tree, 4, cs.kdf))[1], leaf)
  })
})

describe("ts-mls patch: dropping an old epoch's receiver data in a big group", () => {
  it("makes the Commit that drops the oldest kept epoch, whose secret tree has 65,536 leaves", async () => {
    const a = await generateKeyPackage(credential("alice"), defaultCapabilities(), defaultLifetime, [], cs)
    let state = await createGroup(utf8("big"), a.publicPackage, a.privatePackage, [], cs)
    const kept = defaultClientConfig.keyRetentionConfig.retainKeysForEpochs
    for (let i = 0; i < kept; i++) state = (await createCommit({ state, cipherSuite: cs })).newState
    // The kept epochs as a group of 65,536 would hold them. Stock spread the dropped epoch's secret tree values
    // (~520,000 here) into the arguments of one call: RangeError, as at a group of 10,000's 5th chained Commit.
    const big = await createSecretTree(65536, new Uint8Array(cs.kdf.size), cs.kdf)
    state = {
      ...state,
      historicalReceiverData: new Map(
        [...state.historicalReceiverData].map(([e, d]) => [e, { ...d, secretTree: big }]),
      ),
    }
    const before = [...state.historicalReceiverData.keys()]
    const next = (await createCommit({ state, cipherSuite: cs })).newState
    assert.deepEqual([...next.historicalReceiverData.keys()], [...before.slice(1), state.groupContext.epoch])
  })
})

describe("ts-mls patch: joining checks the whole tree (RFC 9420 §12.4.3.1) while its signatures are checked", () => {
  /** Alice's new group, and KeyPackages of `others` more members. */
  async function aliceAnd(others: number) {
    const a = await generateKeyPackage(credential("alice"), defaultCapabilities(), defaultLifetime, [], cs)
    const start = await createGroup(utf8("join checks"), a.publicPackage, a.privatePackage, [], cs)
    const kps = await Promise.all(
      Array.from({ length: others }, (_, i) =>
        generateKeyPackage(credential(`m${i + 1}`), defaultCapabilities(), defaultLifetime, [], cs),
      ),
    )
    return { start, kps }
  }
  const add = (k: { publicPackage: KeyPackage }) => ({
    proposalType: "add" as const,
    add: { keyPackage: k.publicPackage },
  })
  const flipped = (b: Uint8Array) => b.map((x, i) => (i === 0 ? x ^ 1 : x))

  it("refuses a 100-member tree with a bad leaf signature, a bad parent hash or another tree hash, and takes it whole", async () => {
    const { start, kps } = await aliceAnd(99)
    // 99 members, then an empty Commit (Alice's path gets parent nodes and parent hashes), then the 100th. No
    // ratchet_tree extension: the joiner is given the tree, so that it can be given a changed one.
    let state = (await createCommit({ state: start, cipherSuite: cs }, { extraProposals: kps.slice(0, 98).map(add) }))
      .newState
    state = (await createCommit({ state, cipherSuite: cs })).newState
    const added = await createCommit({ state, cipherSuite: cs }, { extraProposals: [add(kps[98]!)] })
    const tree = added.newState.ratchetTree
    const joiner = kps[98]!
    const join = (t: RatchetTree) =>
      joinGroup(added.welcome!, joiner.publicPackage, joiner.privatePackage, emptyPskIndex, cs, t)

    const badSignature = [...tree]
    const leaf60 = tree[120]
    assert.equal(leaf60?.nodeType, "leaf")
    if (leaf60?.nodeType !== "leaf") return
    badSignature[120] = { ...leaf60, leaf: { ...leaf60.leaf, signature: flipped(leaf60.leaf.signature) } }
    // Met in the leaf loop, before the parent hashes and the tree hash (which this change breaks too) are looked at.
    await assert.rejects(join(badSignature), (e: unknown) => {
      assert.ok(e instanceof CryptoVerificationError)
      assert.match(e.message, /Could not verify leaf node signature/)
      return true
    })

    // Alice's Commit put her path in the tree: node 63 is on it, and node 31's parent hash covers it.
    const badParentHash = [...tree]
    const node63 = tree[63]
    assert.equal(node63?.nodeType, "parent")
    if (node63?.nodeType !== "parent") return
    badParentHash[63] = { ...node63, parent: { ...node63.parent, parentHash: flipped(node63.parent.parentHash) } }
    await assert.rejects(join(badParentHash), (e: unknown) => {
      assert.ok(e instanceof CryptoVerificationError)
      assert.match(e.message, /Unable to verify parent hash/)
      return true
    })

    // A sound tree, but not the group's: the tree before the last Commit.
    await assert.rejects(join(state.ratchetTree), (e: unknown) => {
      assert.ok(e instanceof ValidationError)
      assert.match(e.message, /Unable to verify tree hash/)
      return true
    })

    const joined = await join(tree)
    assert.equal(joined.ratchetTree.filter((n) => n?.nodeType === "leaf").length, 100)
  })

  it("refuses a Welcome's ratchet_tree with a bad leaf signature or a signer leaf of another key, as stock does", async () => {
    const { start, kps } = await aliceAnd(40)
    const state = (await createCommit({ state: start, cipherSuite: cs }, { extraProposals: kps.slice(0, 39).map(add) }))
      .newState
    const joiner = kps[39]!
    // Alice commits the joiner's Add from a tree given to her, and sends it in the Welcome (ratchet_tree extension).
    const joinFrom = async (tree: RatchetTree) => {
      const { welcome } = await createCommit(
        { state: { ...state, ratchetTree: tree }, cipherSuite: cs },
        { extraProposals: [add(joiner)], ratchetTreeExtension: true },
      )
      return joinGroup(welcome!, joiner.publicPackage, joiner.privatePackage, emptyPskIndex, cs)
    }
    const withLeaf = (nodeIndex: number, change: (leaf: LeafNode) => LeafNode): RatchetTree => {
      const node = state.ratchetTree[nodeIndex]
      assert.equal(node?.nodeType, "leaf")
      if (node?.nodeType !== "leaf") throw new Error("not a leaf")
      return state.ratchetTree.map((n, i) => (i === nodeIndex ? { ...node, leaf: change(node.leaf) } : n))
    }

    // Leaf 35 (in the second batch of checks) with a bad signature.
    await assert.rejects(
      joinFrom(withLeaf(70, (leaf) => ({ ...leaf, signature: flipped(leaf.signature) }))),
      (e: unknown) => e instanceof CryptoVerificationError && /Could not verify leaf node signature/.test(e.message),
    )
    // Alice's leaf with another signature key: her GroupInfo signature fails, and so does her leaf's (one of the batched
    // checks); the GroupInfo's is met first, as in stock ts-mls.
    const otherKey = (await cs.signature.keygen()).publicKey
    await assert.rejects(
      joinFrom(withLeaf(0, (leaf) => ({ ...leaf, signaturePublicKey: otherKey }))),
      (e: unknown) => e instanceof CryptoVerificationError && /Could not verify groupInfo signature/.test(e.message),
    )

    const joined = await joinFrom(state.ratchetTree)
    assert.equal(joined.ratchetTree.filter((n) => n?.nodeType === "leaf").length, 41)
  })
})
