/**
 * Server migration 6 (accounts and devices): a database written the way the server before issue 16 wrote it
 * (schema 5, users by name) is opened by today's server and upgraded in place. Each user becomes an account with one
 * device whose login and MLS key are the old key; KeyPackages, reservations, sessions, memberships, the log and the
 * inbox carry over to that device.
 */
import assert from "node:assert/strict"
import { createHash, randomBytes } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, it } from "node:test"
import { fromBase64Url, toBase64Url } from "../../rpc-schema/common.js"
import { validateKeyPackage } from "../../server/services/keyPackageValidation.js"
import { suiteImpl } from "../../server/mls.js"
import { migrations } from "../../server/store/migrations.js"
import { SqliteStore } from "../../server/store/sqliteStore.js"
import { readInbox, readLog } from "../helpers/groups.js"
import { http } from "../helpers/http.js"
import { fakeCommit, fakeMessage, fakeWelcome, newGroupId } from "../helpers/mls.js"
import { writeOldServerDb, type OldKeyPackage } from "../helpers/oldServerDb.js"
import { startServer } from "../helpers/server.js"
import {
  login,
  makeEncodedKeyPackage,
  makeKeyPackage,
  encodeKp,
  newIdentity,
  uploadKeyPackages,
  type Identity,
} from "../helpers/users.js"

/** A KeyPackage as the old server stored it: bare user name as identity, the user's one key, ref computed by it. */
async function oldKeyPackage(name: string, id: Identity, now: number, seq: number): Promise<OldKeyPackage> {
  const bytes = fromBase64Url(encodeKp(await makeKeyPackage({ name, ...id }, { now, identity: name })))
  const v = await validateKeyPackage(
    bytes,
    { clientId: name, legacyHandle: name, mlsKey: id.publicKey },
    now,
    suiteImpl,
  )
  assert.ok(v.ok)
  return {
    ref: v.kp.ref,
    owner: name,
    initKey: v.kp.initKey,
    data: v.kp.data,
    notAfter: v.kp.notAfter,
    uploadedAt: now,
    seq,
  }
}

describe("server migration 6: users become accounts with one device", () => {
  it("upgrades a schema-5 database in place: keys, reservations, sessions, memberships, log and inbox intact", async (t) => {
    const tmp = mkdtempSync(join(tmpdir(), "mls-migration-"))
    t.after(() => rmSync(tmp, { recursive: true, force: true }))
    const dbPath = join(tmp, "server.db")
    const now = Date.now()
    const [alice, bob, carol] = [newIdentity(), newIdentity(), newIdentity()]
    const g = newGroupId()
    const welcome = fakeWelcome()
    const welcomeItem = JSON.stringify({ kind: "welcome", groupId: g.id, seq: 1, epoch: 1, by: "alice", welcome })
    const carolToken = randomBytes(32).toString("base64url")
    const [k1, k2] = [await oldKeyPackage("alice", alice, now, 1), await oldKeyPackage("alice", alice, now, 2)]
    const reservation = {
      id: randomBytes(16).toString("base64url"),
      by: "bob",
      createdAt: now,
      expiresAt: now + 60_000,
    }
    writeOldServerDb(dbPath, 5, {
      users: [
        { name: "alice", key: alice.publicKey, createdAt: now - 3 },
        { name: "bob", key: bob.publicKey, createdAt: now - 2 },
        { name: "carol", key: carol.publicKey, createdAt: now - 1 },
        // more users, so device ids with a 0 first digit would show (1 in 16 each without the fix)
        ...Array.from({ length: 29 }, (_, i) => ({ name: `u${i}`, key: newIdentity().publicKey, createdAt: now - 4 })),
      ],
      keyPackages: [k1!, { ...k2!, reservation }],
      groups: [
        {
          id: g.id,
          epoch: 1,
          lastSeq: 2,
          createdBy: "alice",
          createdAt: now,
          members: [
            { name: "alice", joinedSeq: 0 },
            { name: "bob", joinedSeq: 1 },
          ],
          entries: [
            {
              seq: 1,
              epoch: 0,
              kind: "commit",
              sender: "alice",
              data: fromBase64Url(fakeCommit(g.bytes, 0)),
              receivedAt: now,
            },
            {
              seq: 2,
              epoch: 1,
              kind: "application",
              sender: "bob",
              data: fromBase64Url(fakeMessage(g.bytes, 1)),
              receivedAt: now,
            },
          ],
        },
      ],
      inbox: [{ name: "bob", kind: "welcome", groupId: g.id, item: welcomeItem, createdAt: now }],
      sessions: [
        { tokenHash: createHash("sha256").update(carolToken).digest(), name: "carol", expiresAt: now + 3600_000 },
      ],
    })

    const s = await startServer(t, { dbPath, domain: "chat.example.org" })
    assert.ok(s.app.store instanceof SqliteStore)
    const db = s.app.store.db
    assert.equal(db.pragma("user_version", { simple: true }), migrations.length)
    assert.deepEqual(db.pragma("foreign_key_check"), [])
    assert.deepEqual(db.prepare("SELECT name FROM sqlite_master WHERE name = 'users'").all(), [])

    // Each user is an account with one device: login key and bound MLS key are the old key.
    const aliceToken = await login(s.url, "alice", alice)
    const dir = await http(s.url, "GET", "/v1/users/alice", { token: aliceToken })
    const [device] = dir.body.devices
    assert.equal(dir.body.devices.length, 1)
    assert.match(dir.body.userId, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    assert.equal(device.clientId, `${dir.body.userId}:${device.deviceId}@chat.example.org`)
    assert.equal(device.loginKey, toBase64Url(alice.publicKey))
    assert.equal(device.mlsKey, toBase64Url(alice.publicKey))
    const ids = new Set<string>()
    for (const name of ["alice", "bob", "carol"])
      ids.add((await http(s.url, "GET", `/v1/users/${name}`, { token: aliceToken })).body.userId)
    assert.equal(ids.size, 3, "every account has its own user id")
    for (const { id } of db.prepare<[], { id: string }>("SELECT id FROM devices").all())
      assert.match(id, /^[89a-f][0-9a-f]{15}$/, "device ids start with a digit 8-f, as new ones do")

    // Keys and the open reservation carry over to the device; bob's old reservation is his to spend.
    const st = await http(s.url, "GET", "/v1/users/alice/keypackages/status", { token: aliceToken })
    assert.equal(st.body.available, 1)
    assert.equal(st.body.reserved, 1)
    const bobToken = await login(s.url, "bob", bob)
    const spent = await http(s.url, "POST", "/v1/keypackages/spend", {
      token: bobToken,
      json: { ref: k2!.ref, reservationId: reservation.id },
    })
    assert.equal(spent.status, 200)
    const r = await http(s.url, "POST", "/v1/keypackages/reserve", { token: bobToken, json: { target: "alice" } })
    assert.equal(r.body.ref, k1!.ref)
    assert.equal(r.body.keyPackages[0].clientId, device.clientId)

    // A session made before the upgrade still works, as carol's one device.
    const carolGroups = await http(s.url, "GET", "/v1/groups", { token: carolToken })
    assert.equal(carolGroups.status, 200)
    assert.deepEqual(carolGroups.body.groups, [])

    // Memberships, the log (senders now devices) and the inbox.
    const group = { id: g.id, bytes: g.bytes, epoch: 1 }
    const bobDir = (await http(s.url, "GET", "/v1/users/bob", { token: bobToken })).body
    const info = await http(s.url, "GET", `/v1/groups/${g.id}`, { token: bobToken })
    assert.deepEqual(info.body.members, ["alice", "bob"])
    assert.deepEqual(
      info.body.devices.map((d: { clientId: string }) => d.clientId).sort(),
      [device.clientId, bobDir.devices[0].clientId].sort(),
    )
    const aliceLog = await readLog(s.url, { name: "alice", ...alice, token: aliceToken }, group)
    assert.deepEqual(
      aliceLog.body.entries.map((e: { seq: number; sender: string; senderClientId: string }) => [
        e.seq,
        e.sender,
        e.senderClientId,
      ]),
      [
        [1, "alice", device.clientId],
        [2, "bob", bobDir.devices[0].clientId],
      ],
    )
    const bobLog = await readLog(s.url, { name: "bob", ...bob, token: bobToken }, group)
    assert.deepEqual(
      bobLog.body.entries.map((e: { seq: number }) => e.seq),
      [2],
      "bob still reads from his join on",
    )
    const inbox = await readInbox(s.url, { name: "bob", ...bob, token: bobToken })
    assert.deepEqual(inbox.body.items[0].item, JSON.parse(welcomeItem))

    // The old daemon's KeyPackages (bare name, old key) are still accepted; a new key is not.
    const aliceUser = { name: "alice", ...alice, token: aliceToken }
    const legacy = await uploadKeyPackages(s.url, aliceUser, [
      await makeEncodedKeyPackage(aliceUser, { now: s.clock.now(), identity: "alice" }),
    ])
    assert.equal(legacy.body.results[0].status, "accepted")
    const other = { ...newIdentity(), name: "alice", clientId: device.clientId }
    const changed = await uploadKeyPackages(s.url, aliceUser, [
      await makeEncodedKeyPackage(other, { now: s.clock.now() }),
    ])
    assert.equal(changed.body.results[0].reason, "credential_mismatch")

    // Opening it again changes nothing: client ids were fixed at the first start.
    await s.restart()
    const again = await http(s.url, "GET", "/v1/users/alice", { token: aliceToken })
    assert.equal(again.body.devices[0].clientId, device.clientId)
  })
})
