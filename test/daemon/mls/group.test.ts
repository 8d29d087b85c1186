import assert from "node:assert/strict"
import { describe, it } from "node:test"
import type { CiphersuiteImpl } from "ts-mls"
import { getSuite } from "../../../crypto/index.js"
import {
  addMembers,
  commitPendingProposals,
  createChatGroup,
  joinFromWelcome,
  leavePending,
  proposeLeave,
  removeMembers,
  selfUpdate,
} from "../../../daemon/mls/group.js"
import type { PendingCommit } from "../../../daemon/mls/group.js"
import { GroupError } from "../../../daemon/mls/groupError.js"
import { validateKeyPackageFor } from "../../../daemon/mls/groupKeyPackage.js"
import {
  deserializeState,
  epoch,
  groupName,
  isActive,
  members,
  serializeState,
} from "../../../daemon/mls/groupState.js"
import type { ChatGroup } from "../../../daemon/mls/groupState.js"
import { encryptText, processIncoming } from "../../../daemon/mls/message.js"
import type { Incoming } from "../../../daemon/mls/message.js"
import { directoryCheck, freshKeyPackage, user } from "./helpers.js"
import type { User } from "./helpers.js"

const groupTitle = "Secret Plans \u{1F92B} of the Book Club"

const alice = user("alice")
const bob = user("bob")
const carol = user("carol")
const directory = new Map([alice, bob, carol].map((u) => [u.identity, u.keys.publicKey]))
const check = directoryCheck(directory)

/** Everything that would be posted to the server, to prove the name never goes there in clear. */
const wire: Uint8Array[] = []

function posted<T extends { commit?: Uint8Array; welcome?: Uint8Array; message?: Uint8Array; proposal?: Uint8Array }>(
  x: T,
): T {
  for (const b of [x.commit, x.welcome, x.message, x.proposal]) if (b !== undefined) wire.push(b)
  return x
}

async function invite(
  cs: CiphersuiteImpl,
  adder: ChatGroup,
  u: User,
): Promise<{ pending: PendingCommit; joined: ChatGroup }> {
  const kp = await freshKeyPackage(u, cs)
  const pending = posted(
    await addMembers(
      adder,
      [{ identity: u.identity, signaturePublicKey: u.keys.publicKey, keyPackage: kp.keyPackage }],
      Date.now(),
      cs,
      check,
    ),
  )
  assert.ok(pending.welcome)
  const joined = await joinFromWelcome(pending.welcome, kp.keyPackage, kp.privateKeyPackage, cs, check)
  return { pending, joined: joined.state }
}

async function expectKind<K extends Incoming["kind"]>(
  p: Promise<Incoming>,
  kind: K,
): Promise<Extract<Incoming, { kind: K }>> {
  const r = await p
  assert.equal(r.kind, kind)
  return r as Extract<Incoming, { kind: K }>
}

async function send(cs: CiphersuiteImpl, from: ChatGroup, text: string) {
  return posted(await encryptText(from, text, cs))
}

function roster(g: ChatGroup): string[] {
  return members(g)
    .map((m) => `${m.leafIndex}:${m.identity}`)
    .sort()
}

async function rejects(p: Promise<unknown>, code: string, reason?: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof GroupError, `expected GroupError, got ${String(e)}`)
    assert.equal(e.code, code)
    if (reason !== undefined) assert.equal(e.details?.reason, reason)
    return true
  })
}

describe("mls group layer", () => {
  it("runs a three-member conversation through add, remove, leave and update", async () => {
    const cs = await getSuite()
    let a = await createChatGroup({ name: groupTitle, creator: alice, now: Date.now(), cs })
    assert.equal(groupName(a), groupTitle)
    assert.equal(epoch(a), 0n)

    // alice adds bob; bob joins from the Welcome and learns the name
    const addBob = await invite(cs, a, bob)
    assert.deepEqual(
      addBob.pending.added.map((m) => m.identity),
      ["bob"],
    )
    a = addBob.pending.state
    let b = addBob.joined
    assert.equal(groupName(b), groupTitle)
    assert.equal(epoch(b), 1n)
    assert.deepEqual(roster(b), roster(a))

    // messages both ways
    let out = await send(cs, a, "hi bob")
    a = out.state
    const m1 = await expectKind(processIncoming(b, out.message, cs, check), "application")
    b = m1.state
    assert.equal(m1.text, "hi bob")
    assert.equal(m1.sender.identity, "alice")
    out = await send(cs, b, "hi alice")
    b = out.state
    const m2 = await expectKind(processIncoming(a, out.message, cs, check), "application")
    a = m2.state
    assert.deepEqual([m2.text, m2.sender.identity], ["hi alice", "bob"])

    // bob adds carol; alice processes the commit; all agree
    const addCarol = await invite(cs, b, carol)
    b = addCarol.pending.state
    let c = addCarol.joined
    const seen = await expectKind(processIncoming(a, addCarol.pending.commit, cs, check), "commit")
    a = seen.state
    assert.equal(seen.committer?.identity, "bob")
    assert.deepEqual(
      seen.added.map((m) => m.identity),
      ["carol"],
    )
    assert.equal(epoch(a), 2n)
    for (const g of [b, c]) {
      assert.equal(epoch(g), epoch(a))
      assert.deepEqual(roster(g), roster(a))
    }
    assert.deepEqual(roster(a), ["0:alice", "1:bob", "2:carol"])
    assert.equal(groupName(c), groupTitle)

    // state survives serialize/deserialize mid-conversation
    c = deserializeState(serializeState(c))
    b = deserializeState(serializeState(b))
    out = await send(cs, c, "carol here")
    c = out.state
    for (const [g, set] of [
      [a, (s: ChatGroup) => (a = s)],
      [b, (s: ChatGroup) => (b = s)],
    ] as const) {
      const r = await expectKind(processIncoming(g, out.message, cs, check), "application")
      assert.deepEqual([r.text, r.sender.identity], ["carol here", "carol"])
      set(r.state)
    }

    // alice removes bob; bob learns it; later messages are not for him
    const bobBefore = b
    const rm = posted(await removeMembers(a, ["bob"], cs, check))
    a = rm.state
    assert.deepEqual(
      rm.removed.map((m) => m.identity),
      ["bob"],
    )
    const bobSees = await expectKind(processIncoming(b, rm.commit, cs, check), "commit")
    b = bobSees.state
    assert.equal(bobSees.removedSelf, true)
    assert.equal(isActive(b), false)
    const carolSees = await expectKind(processIncoming(c, rm.commit, cs, check), "commit")
    c = carolSees.state
    assert.equal(carolSees.removedSelf, false)
    assert.deepEqual(roster(c), ["0:alice", "2:carol"])
    out = await send(cs, a, "bob is gone")
    a = out.state
    const r3 = await expectKind(processIncoming(c, out.message, cs, check), "application")
    c = r3.state
    await rejects(processIncoming(b, out.message, cs, check), "not_member")
    await rejects(processIncoming(bobBefore, out.message, cs, check), "epoch_mismatch")
    await rejects(encryptText(b, "still here?", cs), "not_member")

    // carol leaves: proposes her removal, alice commits it
    const leave = posted(await proposeLeave(c, cs))
    c = leave.state
    assert.equal(leavePending(c), true)
    await rejects(selfUpdate(c, cs, check), "leave_pending")
    const prop = await expectKind(processIncoming(a, leave.proposal, cs, check), "proposal")
    a = prop.state
    assert.equal(prop.proposer?.identity, "carol")
    assert.equal(prop.removes?.identity, "carol")
    await rejects(encryptText(a, "wait", cs), "proposals_pending")
    const done = posted(await commitPendingProposals(a, cs, check))
    a = done.state
    assert.deepEqual(
      done.removed.map((m) => m.identity),
      ["carol"],
    )
    const carolOut = await expectKind(processIncoming(c, done.commit, cs, check), "commit")
    assert.equal(carolOut.removedSelf, true)
    assert.deepEqual(roster(a), ["0:alice"])

    // self-update: new epoch, new leaf encryption key, same member
    const leafKey = (g: ChatGroup) =>
      g.mls.ratchetTree[0]?.nodeType === "leaf" && g.mls.ratchetTree[0].leaf.hpkePublicKey
    const upd = posted(await selfUpdate(a, cs, check))
    assert.equal(upd.epoch, epoch(a) + 1n)
    assert.notDeepEqual(leafKey(upd.state), leafKey(a))
    assert.deepEqual([upd.added, upd.removed], [[], []])
    assert.deepEqual(roster(upd.state), ["0:alice"])

    // the group name never went to the server in clear
    const needle = Buffer.from(groupTitle, "utf8")
    assert.ok(wire.length > 8)
    for (const bytes of wire) assert.equal(Buffer.from(bytes).indexOf(needle), -1)
  })

  it("discards the losing pending commit and redoes it on the winner's epoch", async () => {
    const cs = await getSuite()
    let a = await createChatGroup({ name: "race", creator: alice, now: Date.now(), cs })
    const addBob = await invite(cs, a, bob)
    a = addBob.pending.state
    let b = addBob.joined

    // both commit at epoch 1: bob's self-update wins at the server, alice's add of carol loses
    const carolKp = await freshKeyPackage(carol, cs)
    const invitee = { identity: "carol", signaturePublicKey: carol.keys.publicKey, keyPackage: carolKp.keyPackage }
    const losing = await addMembers(a, [invitee], Date.now(), cs, check)
    const winning = await selfUpdate(b, cs, check)
    assert.equal(losing.epoch, winning.epoch)
    b = winning.state

    // alice drops her pending state and processes the winner from her old one
    const r = await expectKind(processIncoming(a, winning.commit, cs, check), "commit")
    a = r.state
    assert.equal(epoch(a), 2n)
    // her own losing commit is now stale
    assert.equal((await processIncoming(a, losing.commit, cs, check)).kind, "stale")

    const redo = await addMembers(a, [invitee], Date.now(), cs, check)
    a = redo.state
    assert.equal(redo.epoch, 3n)
    b = (await expectKind(processIncoming(b, redo.commit, cs, check), "commit")).state
    assert.ok(redo.welcome)
    const c = (await joinFromWelcome(redo.welcome, carolKp.keyPackage, carolKp.privateKeyPackage, cs, check)).state
    for (const g of [b, c]) assert.deepEqual([epoch(g), roster(g)], [epoch(a), roster(a)])
    const hi = await encryptText(c, "made it", cs)
    assert.equal((await expectKind(processIncoming(a, hi.message, cs, check), "application")).text, "made it")
    assert.equal((await expectKind(processIncoming(b, hi.message, cs, check), "application")).text, "made it")
  })

  it("refuses a credential whose key differs from the directory or the pin", async () => {
    const cs = await getSuite()
    const a = await createChatGroup({ name: "pins", creator: alice, now: Date.now(), cs })
    const mallory = user("bob") // claims to be bob with another key
    const kp = await freshKeyPackage(mallory, cs)
    // the KeyPackage check catches it before MLS does
    await rejects(
      addMembers(
        a,
        [{ identity: "bob", signaturePublicKey: bob.keys.publicKey, keyPackage: kp.keyPackage }],
        Date.now(),
        cs,
        check,
      ),
      "keypackage_invalid",
      "signature_key_mismatch",
    )
    // a directory that vouched for the forged key when inviting, seen by a joiner whose pins disagree
    const lying = directoryCheck(new Map([...directory, ["bob", mallory.keys.publicKey]]))
    const pending = await addMembers(
      a,
      [{ identity: "bob", signaturePublicKey: mallory.keys.publicKey, keyPackage: kp.keyPackage }],
      Date.now(),
      cs,
      lying,
    )
    assert.ok(pending.welcome)
    const carolKp = await freshKeyPackage(carol, cs)
    const withCarol = await addMembers(
      pending.state,
      [{ identity: "carol", signaturePublicKey: carol.keys.publicKey, keyPackage: carolKp.keyPackage }],
      Date.now(),
      cs,
      lying,
    )
    assert.ok(withCarol.welcome)
    await rejects(
      joinFromWelcome(withCarol.welcome, carolKp.keyPackage, carolKp.privateKeyPackage, cs, check),
      "credential_refused",
    )
    // and a key change after pinning is refused too
    const pinning = directoryCheck(directory)
    assert.equal((await pinning("bob", bob.keys.publicKey)).kind, "accepted")
    directory.set("bob", mallory.keys.publicKey)
    try {
      assert.equal((await pinning("bob", mallory.keys.publicKey)).kind, "refused")
    } finally {
      directory.set("bob", bob.keys.publicKey)
    }
  })

  it("refuses a KeyPackage for the wrong user, expired, or with the wrong key", async () => {
    const cs = await getSuite()
    const now = Date.now()
    const good = await freshKeyPackage(bob, cs, now)
    await validateKeyPackageFor(good.keyPackage, "bob", bob.keys.publicKey, now, cs)
    const cases = [
      { name: "wrong user", user: "carol", key: bob.keys.publicKey, at: now, reason: "credential_mismatch" },
      { name: "wrong key", user: "bob", key: carol.keys.publicKey, at: now, reason: "signature_key_mismatch" },
      { name: "expired", user: "bob", key: bob.keys.publicKey, at: now + 15 * 24 * 3600_000, reason: "expired" },
      { name: "not yet valid", user: "bob", key: bob.keys.publicKey, at: now - 2 * 3600_000, reason: "expired" },
    ]
    for (const c of cases)
      await rejects(validateKeyPackageFor(good.keyPackage, c.user, c.key, c.at, cs), "keypackage_invalid", c.reason)
    const tampered = { ...good.keyPackage, signature: good.keyPackage.signature.map((x, i) => (i === 0 ? x ^ 1 : x)) }
    await rejects(
      validateKeyPackageFor(tampered, "bob", bob.keys.publicKey, now, cs),
      "keypackage_invalid",
      "bad_signature",
    )
  })

  it("rejects garbage and other groups' messages without changing state", async () => {
    const cs = await getSuite()
    const a = await createChatGroup({ name: "one", creator: alice, now: Date.now(), cs })
    const other = await createChatGroup({ name: "two", creator: alice, now: Date.now(), cs })
    await rejects(processIncoming(a, new Uint8Array([1, 2, 3]), cs, check), "malformed_message")
    const foreign = await encryptText(other, "x", cs)
    await rejects(processIncoming(a, foreign.message, cs, check), "malformed_message")
    await rejects(createChatGroup({ name: "  ", creator: alice, now: Date.now(), cs }), "invalid_name")
    await rejects(removeMembers(a, ["alice"], cs, check), "cannot_remove_self")
    await rejects(removeMembers(a, ["zed"], cs, check), "unknown_member")
    assert.equal(epoch(a), 0n)
  })
})
