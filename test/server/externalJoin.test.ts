/**
 * External joins on a real server with real MLS (ts-mls): GroupInfo stored with each Commit and served to the devices
 * entitled to join, and external Commits accepted from a member account's devices only (a new device, a resync),
 * refused from strangers, for another device, removing someone else's leaf, or at a stale epoch.
 */
import assert from "node:assert/strict"
import { describe, it } from "node:test"
import {
  createCommit,
  createGroup as createMlsGroup,
  createGroupInfoWithExternalPub,
  createGroupInfoWithExternalPubAndRatchetTree,
  defaultCapabilities,
  encodeMlsMessage,
  generateKeyPackageWithKey,
  joinGroupExternal,
  makePskIndex,
  processMessage,
  acceptAll,
  type ClientState,
  type GroupInfo,
} from "ts-mls"
import { defaultClientConfig } from "ts-mls/clientConfig.js"
import { decodeMlsMessage } from "ts-mls/message.js"
import { fromBase64Url, toBase64Url } from "../../rpc-schema/common.js"
import { sameBytes } from "../../shared/bytes.js"
import { http } from "../helpers/http.js"
import { fakeWelcome } from "../helpers/mls.js"
import { startServer, type TestServer } from "../helpers/server.js"
import { encodeKp, linkDevice, newUser, testSuite, uploadKeyPackages, type TestDevice } from "../helpers/users.js"

/** A device's KeyPackage (public and private parts) under its client id, uploaded so the server binds its MLS key. */
async function keyPackage(s: TestServer, d: TestDevice) {
  const now = s.clock.now()
  const kp = await generateKeyPackageWithKey(
    { credentialType: "basic", identity: new TextEncoder().encode(d.clientId) },
    defaultCapabilities(),
    { notBefore: BigInt(Math.floor(now / 1000) - 3600), notAfter: BigInt(Math.floor(now / 1000) + 14 * 86400) },
    [],
    { signKey: d.seed, publicKey: d.publicKey },
    await testSuite(),
  )
  const r = await uploadKeyPackages(s.url, d, [encodeKp(kp.publicPackage)])
  assert.equal(r.body.results[0].status, "accepted", JSON.stringify(r.body))
  return kp
}

const encodeInfo = (groupInfo: GroupInfo) =>
  toBase64Url(encodeMlsMessage({ version: "mls10", wireformat: "mls_group_info", groupInfo }))

async function groupInfoOf(state: ClientState): Promise<string> {
  return encodeInfo(await createGroupInfoWithExternalPubAndRatchetTree(state, [], await testSuite()))
}

const getInfo = (s: TestServer, d: TestDevice, groupId: string) =>
  http(s.url, "GET", `/v1/groups/${groupId}/group-info`, { token: d.token })

function decodeInfo(text: string): GroupInfo {
  const m = decodeMlsMessage(fromBase64Url(text), 0)![0]
  assert.equal(m.wireformat, "mls_group_info")
  return (m as { groupInfo: GroupInfo }).groupInfo
}

const postExternal = (s: TestServer, d: TestDevice, groupId: string, commit: Uint8Array, groupInfo?: string) =>
  http(s.url, "POST", `/v1/groups/${groupId}/external-commits`, {
    token: d.token,
    json: { commit: toBase64Url(commit), ...(groupInfo !== undefined && { groupInfo }) },
  })

/** alice's group (epoch 0, GroupInfo stored at creation) and her state. */
async function aliceGroup(s: TestServer, alice: TestDevice) {
  const cs = await testSuite()
  const kp = await keyPackage(s, alice)
  const groupId = new Uint8Array(16).map(() => Math.floor(Math.random() * 256))
  const state = await createMlsGroup(groupId, kp.publicPackage, kp.privatePackage, [], cs)
  const id = toBase64Url(groupId)
  const r = await http(s.url, "POST", "/v1/groups", {
    token: alice.token,
    json: { groupId: id, groupInfo: await groupInfoOf(state) },
  })
  assert.equal(r.status, 201, JSON.stringify(r.body))
  return { id, state }
}

/** An external Commit of `d` from the GroupInfo the server serves it. */
async function externalJoin(
  s: TestServer,
  d: TestDevice,
  groupId: string,
  resync: boolean,
  config = defaultClientConfig,
) {
  const cs = await testSuite()
  const info = await getInfo(s, d, groupId)
  assert.equal(info.status, 200, JSON.stringify(info.body))
  const kp = await keyPackage(s, d)
  const joined = await joinGroupExternal(
    decodeInfo(info.body.groupInfo),
    kp.publicPackage,
    kp.privatePackage,
    resync,
    cs,
    undefined,
    config,
  )
  const commit = encodeMlsMessage({
    version: "mls10",
    wireformat: "mls_public_message",
    publicMessage: joined.publicMessage,
  })
  return { commit, state: joined.newState, groupInfo: await groupInfoOf(joined.newState), epoch: info.body.epoch }
}

async function roster(s: TestServer, d: TestDevice, groupId: string): Promise<string[]> {
  const r = await http(s.url, "GET", `/v1/groups/${groupId}`, { token: d.token })
  assert.equal(r.status, 200, JSON.stringify(r.body))
  return r.body.devices.map((x: { clientId: string }) => x.clientId)
}

describe("external joins", () => {
  it("serves the GroupInfo to the roster and to the members' other devices only", async (t) => {
    const s = await startServer(t)
    const alice = await newUser(s.url, "alice")
    const carol = await newUser(s.url, "carol")
    const { id } = await aliceGroup(s, alice)
    const phone = await linkDevice(s.url, alice)
    for (const d of [alice, phone]) {
      const r = await getInfo(s, d, id)
      assert.equal(r.status, 200)
      assert.equal(r.body.epoch, 0)
      assert.equal(decodeInfo(r.body.groupInfo).groupContext.epoch, 0n)
    }
    const stranger = await getInfo(s, carol, id)
    assert.equal(stranger.status, 403)
    assert.equal(stranger.body.error.code, "not_member")
    assert.equal((await getInfo(s, carol, toBase64Url(new Uint8Array(16)))).body.error.code, "group_not_found")
  })

  it("lets a member's new device join by external Commit; the member processes it to the same epoch", async (t) => {
    const s = await startServer(t)
    const alice = await newUser(s.url, "alice")
    const { id, state } = await aliceGroup(s, alice)
    const phone = await linkDevice(s.url, alice)
    const joinable = (d: TestDevice) => http(s.url, "GET", "/v1/joinable-groups", { token: d.token })
    assert.deepEqual((await joinable(phone)).body, { groups: [{ groupId: id, epoch: 0 }] })
    assert.deepEqual((await joinable(alice)).body, { groups: [] })
    const join = await externalJoin(s, phone, id, false)
    const r = await postExternal(s, phone, id, join.commit, join.groupInfo)
    assert.equal(r.status, 201, JSON.stringify(r.body))
    assert.deepEqual(r.body, { seq: 1, epoch: 0, newEpoch: 1 })
    assert.deepEqual(await roster(s, alice, id), [alice.clientId, phone.clientId].sort())
    assert.deepEqual((await joinable(phone)).body, { groups: [] })

    // alice reads the Commit from the log and reaches the joiner's epoch and secrets.
    const log = await http(s.url, "GET", `/v1/groups/${id}/log?after=0`, { token: alice.token })
    assert.equal(log.body.entries[0].senderClientId, phone.clientId)
    const cs = await testSuite()
    const processed = await processMessage(
      decodeMlsMessage(fromBase64Url(log.body.entries[0].message), 0)![0] as Parameters<typeof processMessage>[0],
      state,
      makePskIndex(state, {}),
      acceptAll,
      cs,
    )
    assert.equal(processed.newState.groupContext.epoch, 1n)
    assert.ok(sameBytes(processed.newState.keySchedule.epochAuthenticator, join.state.keySchedule.epochAuthenticator))
    // The joiner reads from the entry after its Commit; the new epoch's GroupInfo is served.
    const own = await http(s.url, "GET", `/v1/groups/${id}/log?after=0`, { token: phone.token })
    assert.deepEqual(own.body.entries, [])
    assert.equal((await getInfo(s, alice, id)).body.epoch, 1)

    // Joining again without removing its leaf is refused: a member rejoins with a resync.
    const again = await externalJoin(s, phone, id, false)
    const dup = await postExternal(s, phone, id, again.commit)
    assert.equal(dup.status, 409)
    assert.equal(dup.body.error.code, "conflict")
  })

  it("accepts a resync that removes the joiner's own old leaf, refuses one that removes another's", async (t) => {
    const s = await startServer(t)
    const alice = await newUser(s.url, "alice")
    const bob = await newUser(s.url, "bob")
    const { id, state } = await aliceGroup(s, alice)
    // bob is added by alice (Welcome), then loses his state and resyncs.
    const cs = await testSuite()
    const bobKp = await keyPackage(s, bob)
    const reserve = await http(s.url, "POST", "/v1/keypackages/reserve", {
      token: alice.token,
      json: { target: "bob" },
    })
    const res = reserve.body.keyPackages[0]
    const add = await createCommit(
      { state, cipherSuite: cs },
      {
        extraProposals: [{ proposalType: "add", add: { keyPackage: bobKp.publicPackage } }],
        wireAsPublicMessage: true,
        ratchetTreeExtension: true,
      },
    )
    const added = await http(s.url, "POST", `/v1/groups/${id}/commits`, {
      token: alice.token,
      json: {
        commit: toBase64Url(encodeMlsMessage(add.commit)),
        welcome: toBase64Url(encodeMlsMessage({ version: "mls10", wireformat: "mls_welcome", welcome: add.welcome! })),
        keyPackages: [{ ref: res.ref, reservationId: res.reservationId }],
        removes: [],
        groupInfo: await groupInfoOf(add.newState),
      },
    })
    assert.equal(added.status, 201, JSON.stringify(added.body))

    // A Commit whose GroupInfo is of the wrong epoch is malformed and changes nothing.
    const stale = await externalJoin(s, bob, id, true)
    const wrongInfo = await postExternal(s, bob, id, stale.commit, await groupInfoOf(add.newState))
    assert.equal(wrongInfo.body.error.code, "malformed_message")

    // A Remove of alice's leaf dressed as bob's resync: the server checks the leaf against the stored tree.
    const aliceLeaf = {
      ...defaultClientConfig,
      keyPackageEqualityConfig: {
        ...defaultClientConfig.keyPackageEqualityConfig,
        compareKeyPackageToLeafNode: (_: unknown, leaf: { signaturePublicKey: Uint8Array }) =>
          sameBytes(leaf.signaturePublicKey, alice.publicKey),
      },
    }
    const forged = await externalJoin(s, bob, id, true, aliceLeaf)
    const refused = await postExternal(s, bob, id, forged.commit, forged.groupInfo)
    assert.equal(refused.status, 403)
    assert.equal(refused.body.error.code, "forbidden")

    // The same Commit posted with another device's session: nobody joins as another device.
    const phone = await linkDevice(s.url, alice)
    await keyPackage(s, phone)
    const asOther = await postExternal(s, phone, id, stale.commit, stale.groupInfo)
    assert.equal(asOther.body.error.code, "forbidden")

    const ok = await postExternal(s, bob, id, stale.commit, stale.groupInfo)
    assert.equal(ok.status, 201, JSON.stringify(ok.body))
    assert.deepEqual(await roster(s, alice, id), [alice.clientId, bob.clientId].sort())
    // The epoch moved on: the next one at the old epoch loses.
    const late = await postExternal(s, bob, id, stale.commit, stale.groupInfo)
    assert.equal(late.status, 409)
    assert.equal(late.body.error.code, "epoch_conflict")
    assert.equal(late.body.error.details.currentEpoch, 2)
  })

  it("answers a GroupInfo that is not this group's new epoch's with malformed_message, changing nothing", async (t) => {
    const s = await startServer(t)
    const alice = await newUser(s.url, "alice")
    const { id, state } = await aliceGroup(s, alice)
    const other = await aliceGroup(s, alice)
    const cs = await testSuite()
    const fresh = toBase64Url(new Uint8Array(16).fill(7))
    for (const groupInfo of [fakeWelcome(), await groupInfoOf(other.state), "AAAA"]) {
      const created = await http(s.url, "POST", "/v1/groups", {
        token: alice.token,
        json: { groupId: fresh, groupInfo },
      })
      assert.equal(created.status, 400, JSON.stringify(created.body))
      assert.equal(created.body.error.code, "malformed_message")
    }
    assert.equal((await getInfo(s, alice, fresh)).body.error.code, "group_not_found")

    const next = await createCommit({ state, cipherSuite: cs }, { wireAsPublicMessage: true })
    const commit = toBase64Url(encodeMlsMessage(next.commit))
    // Epoch 0's GroupInfo with a Commit that starts epoch 1; another group's; a GroupInfo without the ratchet tree.
    const noTree = encodeInfo(await createGroupInfoWithExternalPub(next.newState, [], cs))
    for (const groupInfo of [await groupInfoOf(state), await groupInfoOf(other.state), noTree]) {
      const r = await http(s.url, "POST", `/v1/groups/${id}/commits`, {
        token: alice.token,
        json: { commit, keyPackages: [], removes: [], groupInfo },
      })
      assert.equal(r.status, 400, JSON.stringify(r.body))
      assert.equal(r.body.error.code, "malformed_message")
    }
    assert.equal((await getInfo(s, alice, id)).body.epoch, 0)
    // A Commit without a GroupInfo is taken, and leaves none for its epoch.
    const bare = await http(s.url, "POST", `/v1/groups/${id}/commits`, {
      token: alice.token,
      json: { commit, keyPackages: [], removes: [] },
    })
    assert.equal(bare.status, 201)
    const none = await getInfo(s, alice, id)
    assert.equal(none.status, 404)
    assert.equal(none.body.error.code, "group_info_unavailable")
  })

  it("refuses a stranger's external Commit and changes nothing", async (t) => {
    const s = await startServer(t)
    const alice = await newUser(s.url, "alice")
    const carol = await newUser(s.url, "carol")
    const { id, state } = await aliceGroup(s, alice)
    // carol got the GroupInfo somehow (here: from alice's state); the server still refuses her.
    const cs = await testSuite()
    const kp = await keyPackage(s, carol)
    const info = await createGroupInfoWithExternalPubAndRatchetTree(state, [], cs)
    const joined = await joinGroupExternal(info, kp.publicPackage, kp.privatePackage, false, cs)
    const commit = encodeMlsMessage({
      version: "mls10",
      wireformat: "mls_public_message",
      publicMessage: joined.publicMessage,
    })
    const r = await postExternal(s, carol, id, commit)
    assert.equal(r.status, 403)
    assert.equal(r.body.error.code, "not_member")
    assert.deepEqual(await roster(s, alice, id), [alice.clientId])
    assert.equal((await getInfo(s, alice, id)).body.epoch, 0)
    // Not an external Commit at all: malformed.
    const member = await createCommit({ state, cipherSuite: cs }, { wireAsPublicMessage: true })
    const wrongKind = await postExternal(s, alice, id, encodeMlsMessage(member.commit))
    assert.equal(wrongKind.body.error.code, "malformed_message")
  })
})
