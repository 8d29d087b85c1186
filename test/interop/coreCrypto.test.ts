// Interop at the MLS level, no server: Wire's core-crypto 10.3.0 (OpenMLS) and the daemon's MLS layer (ts-mls with
// the native provider) in one group, each as creator and as joiner. What each side needs is in INTEROP-NOTES.md.
import assert from "node:assert/strict"
import { randomUUID } from "node:crypto"
import { describe, it } from "node:test"
import { defaultCapabilities, generateKeyPackageWithKey } from "ts-mls"
import type { CiphersuiteImpl } from "ts-mls"
import { encodeKeyPackage } from "ts-mls/keyPackage.js"
import { getSuite } from "../../crypto/index.js"
import { basicCredential, identityOf } from "../../daemon/mls/credentialCheck.js"
import { addMembers, createChatGroup, joinFromWelcome, removeMembers, selfUpdate } from "../../daemon/mls/group.js"
import { decodeKeyPackageBytes } from "../../daemon/mls/groupKeyPackage.js"
import { epoch, groupId, members } from "../../daemon/mls/groupState.js"
import type { ChatGroup } from "../../daemon/mls/groupState.js"
import { encryptText, processIncoming } from "../../daemon/mls/message.js"
import type { Incoming } from "../../daemon/mls/message.js"
import { directoryCheck, freshKeyPackage, user } from "../daemon/mls/helpers.js"
import type { User } from "../daemon/mls/helpers.js"
import { CoreCryptoClient, randomDeviceId } from "./coreCrypto.js"

const domain = "example.test"

/** A daemon-side member whose credential identity is a client id with a 16-digit device id. */
function daemonDevice(): User {
  return user(`${randomUUID()}:${randomDeviceId().toString(16)}@${domain}`)
}

function ccDevice(): Promise<CoreCryptoClient> {
  return CoreCryptoClient.create({ userId: randomUUID(), deviceId: randomDeviceId(), domain })
}

/** The directory both sides would read from the server: client id → MLS signature key. */
async function directoryOf(daemonUsers: User[], ccClients: CoreCryptoClient[]): Promise<Map<string, Uint8Array>> {
  const entries: [string, Uint8Array][] = daemonUsers.map((u) => [u.identity, u.keys.publicKey])
  for (const c of ccClients) entries.push([c.clientId, await c.signaturePublicKey()])
  return new Map(entries)
}

async function expectKind<K extends Incoming["kind"]>(
  p: Promise<Incoming>,
  kind: K,
): Promise<Extract<Incoming, { kind: K }>> {
  const r = await p
  assert.equal(r.kind, kind)
  return r as Extract<Incoming, { kind: K }>
}

function clientIds(g: ChatGroup): string[] {
  return members(g)
    .map((m) => m.identity)
    .sort()
}

/** Both implementations see the same members at the same epoch. */
async function agree(cc: CoreCryptoClient, d: ChatGroup): Promise<void> {
  assert.deepEqual(await cc.members(groupId(d)), clientIds(d))
  assert.equal(await cc.epoch(groupId(d)), epoch(d))
}

/** A text each way; answers the daemon member's state after. */
async function chatBothWays(cc: CoreCryptoClient, d: ChatGroup, cs: CiphersuiteImpl, dUser: User): Promise<ChatGroup> {
  const check = directoryCheck(await directoryOf([dUser], [cc]))
  const fromCc = await cc.encrypt(groupId(d), "hello from OpenMLS")
  const got = await expectKind(processIncoming(d, fromCc, cs, check), "application")
  assert.deepEqual([got.text, got.sender.identity], ["hello from OpenMLS", cc.clientId])
  const out = await encryptText(got.state, "hello from ts-mls", cs)
  assert.deepEqual(await cc.receive(groupId(d), out.message), {
    kind: "text",
    text: "hello from ts-mls",
    sender: dUser.identity,
  })
  return out.state
}

describe("interop with core-crypto 10.3.0 (OpenMLS), MLS level", () => {
  it("renders a client id as <uuid>:<hex>@<domain>, the hex unpadded (16 digits when the top one is non-zero)", async () => {
    const userId = randomUUID()
    const short = await CoreCryptoClient.create({ userId: userId.toUpperCase(), deviceId: 0x1234n, domain })
    assert.equal(short.clientId, `${userId}:1234@${domain}`)
    const deviceId = randomDeviceId()
    assert.ok(deviceId >= 0x8000000000000000n)
    const full = await CoreCryptoClient.create({ userId, deviceId, domain })
    assert.match(full.clientId, new RegExp(`^${userId}:[89a-f][0-9a-f]{15}@${domain}$`))
    assert.equal(full.clientId, `${userId}:${deviceId.toString(16).padStart(16, "0")}@${domain}`)
  })

  it("core-crypto creates a group, adds a daemon device from its bare KeyPackage, and both commit and chat", async () => {
    const cs = await getSuite()
    const cc = await ccDevice()
    const dUser = daemonDevice()
    const check = directoryCheck(await directoryOf([dUser], [cc]))
    const id = cs.rng.randomBytes(16)
    await cc.createGroup(id)

    const kp = await freshKeyPackage(dUser, cs)
    // A Commit its delivery refuses (the server's epoch_conflict, say) is dropped: the group stays as it was.
    const refused = new Error("refused by the delivery service")
    await assert.rejects(
      cc.addMembers(id, [encodeKeyPackage(kp.keyPackage)], async () => {
        throw refused
      }),
      (e) => e === refused,
    )
    assert.deepEqual([await cc.epoch(id), await cc.members(id)], [0n, [cc.clientId]])
    const add = await cc.addMembers(id, [encodeKeyPackage(kp.keyPackage)])
    assert.ok(add.welcome)
    // core-crypto sends its Commit as a PublicMessage (wire format 1) and its Welcome with the ratchet tree.
    assert.deepEqual([...add.commit.subarray(0, 4)], [0, 1, 0, 1])
    const joined = await joinFromWelcome(add.welcome.serialize(), kp.keyPackage, kp.privateKeyPackage, cs, check)
    assert.equal(joined.name, "")
    let d = joined.state
    assert.deepEqual(clientIds(d), [cc.clientId, dUser.identity].sort())
    await agree(cc, d)

    d = await chatBothWays(cc, d, cs, dUser)

    // The daemon's self-update (a PublicMessage Commit with a path), then core-crypto's.
    const upd = await selfUpdate(d, cs, check)
    assert.deepEqual(await cc.receive(id, upd.commit), { kind: "commit", active: true })
    d = upd.state
    await agree(cc, d)
    const ccUpd = await cc.selfUpdate(id)
    const seen = await expectKind(processIncoming(d, ccUpd.commit, cs, check), "commit")
    assert.equal(seen.committer?.identity, cc.clientId)
    d = seen.state
    await agree(cc, d)
    assert.equal(epoch(d), 3n)

    // core-crypto adds a second daemon device; both earlier members and the newcomer agree.
    const dUser2 = daemonDevice()
    const check2 = directoryCheck(await directoryOf([dUser, dUser2], [cc]))
    const kp2 = await freshKeyPackage(dUser2, cs)
    const add2 = await cc.addMembers(id, [encodeKeyPackage(kp2.keyPackage)])
    const seenAdd = await expectKind(processIncoming(d, add2.commit, cs, check2), "commit")
    assert.deepEqual(
      seenAdd.added.map((m) => m.identity),
      [dUser2.identity],
    )
    d = seenAdd.state
    const d2 = (await joinFromWelcome(add2.welcome!.serialize(), kp2.keyPackage, kp2.privateKeyPackage, cs, check2))
      .state
    await agree(cc, d)
    await agree(cc, d2)
    d = await chatBothWays(cc, d, cs, dUser)
  })

  it("the daemon creates a group, adds core-crypto from its KeyPackage, and both add, remove and chat", async () => {
    const cs = await getSuite()
    const cc = await ccDevice()
    const creator = daemonDevice()
    const third = daemonDevice()
    const check = directoryCheck(await directoryOf([creator, third], [cc]))
    let d = await createChatGroup({ name: "interop", creator, now: Date.now(), cs })

    const ccKp = decodeKeyPackageBytes(await cc.keyPackage())
    assert.equal(identityOf(ccKp.leafNode.credential), cc.clientId)
    const add = await addMembers(
      d,
      [{ identity: cc.clientId, signaturePublicKey: await cc.signaturePublicKey(), keyPackage: ccKp }],
      Date.now(),
      cs,
      check,
    )
    d = add.state
    assert.deepEqual(await cc.join(add.welcome!), groupId(d))
    await agree(cc, d)
    d = await chatBothWays(cc, d, cs, creator)

    // The daemon adds a third device; core-crypto processes the Commit.
    const kp3 = await freshKeyPackage(third, cs)
    const add3 = await addMembers(
      d,
      [{ identity: third.identity, signaturePublicKey: third.keys.publicKey, keyPackage: kp3.keyPackage }],
      Date.now(),
      cs,
      check,
    )
    d = add3.state
    assert.deepEqual(await cc.receive(groupId(d), add3.commit), { kind: "commit", active: true })
    let t = (await joinFromWelcome(add3.welcome!, kp3.keyPackage, kp3.privateKeyPackage, cs, check)).state
    await agree(cc, d)

    // core-crypto removes it; the daemon's members see the removal, the removed one learns it.
    const rm = await cc.removeMembers(groupId(d), [third.identity])
    const seen = await expectKind(processIncoming(d, rm.commit, cs, check), "commit")
    assert.deepEqual(
      seen.removed.map((m) => m.identity),
      [third.identity],
    )
    d = seen.state
    const gone = await expectKind(processIncoming(t, rm.commit, cs, check), "commit")
    assert.equal(gone.removedSelf, true)
    t = gone.state
    await agree(cc, d)

    // The daemon removes core-crypto; core-crypto learns it is out.
    const rmCc = await removeMembers(d, [cc.clientId], cs, check)
    assert.deepEqual(await cc.receive(groupId(d), rmCc.commit), { kind: "commit", active: false })
    assert.deepEqual(clientIds(rmCc.state), [creator.identity])
  })

  it("core-crypto refuses application messages from a member whose identity is not a client id", async () => {
    const cs = await getSuite()
    const cc = await ccDevice()
    const legacy = user("alice")
    const check = directoryCheck(await directoryOf([legacy], [cc]))
    const id = cs.rng.randomBytes(16)
    await cc.createGroup(id)
    const kp = await freshKeyPackage(legacy, cs)
    const add = await cc.addMembers(id, [encodeKeyPackage(kp.keyPackage)])
    const d = (await joinFromWelcome(add.welcome!.serialize(), kp.keyPackage, kp.privateKeyPackage, cs, check)).state
    const out = await encryptText(d, "hi", cs)
    await assert.rejects(cc.receive(id, out.message), (e: any) => {
      assert.match(String(e.inner?.mlsError?.inner?.msg), /not of the format `<user-id:device-id@domain>`/)
      return true
    })
  })

  it("core-crypto's groups require the x509 credential type in a joiner's capabilities (ts-mls's defaults list it)", async () => {
    const cs = await getSuite()
    const cc = await ccDevice()
    const id = cs.rng.randomBytes(16)
    await cc.createGroup(id)
    const u = daemonDevice()
    const nowS = BigInt(Math.floor(Date.now() / 1000))
    const basicOnly = await generateKeyPackageWithKey(
      basicCredential(u.identity),
      { ...defaultCapabilities(), credentials: ["basic"] },
      { notBefore: nowS - 3600n, notAfter: nowS + 86400n },
      [],
      { signKey: u.keys.privateKey, publicKey: u.keys.publicKey },
      cs,
    )
    await assert.rejects(cc.addMembers(id, [encodeKeyPackage(basicOnly.publicPackage)]), (e: any) => {
      assert.equal(e.inner?.mlsError?.inner?.msg, "Credentials are not acceptable.")
      return true
    })
    const daemonKp = await freshKeyPackage(u, cs)
    assert.ok(daemonKp.keyPackage.leafNode.capabilities.credentials.includes("x509"))
    await cc.addMembers(id, [encodeKeyPackage(daemonKp.keyPackage)])
  })
})
