/**
 * The daemon's group store on a real SQLite file with real MLS states: the ratchet tree is stored apart from the rest
 * of the state, once per tree hash, so a message does not rewrite it; a Commit in flight keeps its own tree until it
 * is adopted or dropped.
 */
import assert from "node:assert/strict"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, it } from "node:test"
import { getSuite } from "../../crypto/index.js"
import { addMembers, createChatGroup, selfUpdate } from "../../daemon/mls/group.js"
import { deserializeState, members, serializeState, type SerializedState } from "../../daemon/mls/groupState.js"
import { encryptText } from "../../daemon/mls/message.js"
import { openDatabase } from "../../daemon/store/database.js"
import { GroupStore } from "../../daemon/store/groupStore.js"
import { migrations } from "../../daemon/store/migrations.js"
import { migrate } from "../../shared/migrate.js"
import { directoryCheck, freshKeyPackage, user } from "./mls/helpers.js"

/** `state` with a count of how often its tree was encoded for the store. */
function counted(state: SerializedState): { state: SerializedState; encodings: () => number } {
  let n = 0
  return {
    state: {
      ...state,
      tree: () => {
        n++
        return state.tree()
      },
    },
    encodings: () => n,
  }
}

describe("group store", () => {
  it("stores the ratchet tree once per tree hash: messages write the state only, a Commit its new tree", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "mls-group-store-"))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    const db = openDatabase(join(dir, "daemon.db"))
    t.after(() => db.close())
    migrate(db, migrations, "mlsd")
    const store = new GroupStore(db)
    const trees = () =>
      db
        .prepare<[], { hash: Buffer; size: number }>(
          "SELECT hash, length(tree) AS size FROM group_trees ORDER BY rowid",
        )
        .all()
    const row = () =>
      db.prepare<[], { state: Buffer; tree: Buffer }>("SELECT state, tree FROM groups, group_trees").get()!

    const cs = await getSuite()
    const [alice, bob] = [user("alice"), user("bob")]
    const check = directoryCheck(new Map([alice, bob].map((u) => [u.identity, u.keys.publicKey])))
    const created = await createChatGroup({ name: "club", creator: alice, now: Date.now(), cs })
    const kp = await freshKeyPackage(bob, cs)
    const invite = [{ identity: bob.identity, signaturePublicKey: bob.keys.publicKey, keyPackage: kp.keyPackage }]
    let group = (await addMembers(created, invite, Date.now(), cs, check)).state
    const id = "club"
    store.insert({
      id,
      name: "club",
      state: serializeState(group),
      epoch: 1,
      lastSeq: 1,
      status: "active",
      joinedAt: Date.now(),
      joinedBy: null,
    })
    assert.deepEqual(
      trees().map((r) => r.hash),
      [Buffer.from(group.mls.groupContext.treeHash)],
    )

    // Messages change the state, not the tree: the tree is neither encoded nor written again.
    for (let i = 0; i < 5; i++) {
      group = (await encryptText(group, `hello ${i}`, cs)).state
      const save = counted(serializeState(group))
      store.saveState(id, save.state, 1, 2 + i)
      assert.equal(save.encodings(), 0)
    }
    assert.equal(trees().length, 1)
    assert.equal(row().state.indexOf(row().tree), -1, "the state row holds no tree")
    assert.deepEqual(members(deserializeState(store.get(id)!.state)), members(group))

    // A Commit in flight keeps its tree beside the state's; adopting it drops the old tree.
    const pending = await selfUpdate(group, cs, check)
    store.setPending(id, { commit: pending.commit, state: serializeState(pending.state) })
    assert.equal(trees().length, 2)
    const inFlight = store.pending(id)!
    assert.deepEqual(
      deserializeState(inFlight.state).mls.groupContext.treeHash,
      pending.state.mls.groupContext.treeHash,
    )
    store.saveState(id, serializeState(pending.state), 2, 7)
    store.setPending(id, null)
    assert.deepEqual(
      trees().map((r) => r.hash),
      [Buffer.from(pending.state.mls.groupContext.treeHash)],
    )
    const stored = deserializeState(store.get(id)!.state)
    assert.equal(stored.mls.groupContext.epoch, 2n)
    assert.deepEqual(members(stored), members(pending.state))

    // A dropped Commit takes its tree with it; the state's stays.
    const dropped = await selfUpdate(stored, cs, check)
    store.setPending(id, { commit: dropped.commit, state: serializeState(dropped.state) })
    store.setPending(id, null)
    assert.deepEqual(
      trees().map((r) => r.hash),
      [Buffer.from(pending.state.mls.groupContext.treeHash)],
    )
  })
})
