import assert from "node:assert/strict"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, it, type TestContext } from "node:test"
import pino from "pino"
import type { InboxItem } from "../../../rpc-schema/server/http/inbox.js"
import { SettableClock } from "../../../daemon/clock.js"
import { textSigner } from "../../../daemon/mls/identity.js"
import { CursorStore } from "../../../daemon/store/cursorStore.js"
import { openDatabase } from "../../../daemon/store/database.js"
import { ServerClient } from "../../../daemon/sync/httpClient.js"
import { Session } from "../../../daemon/sync/session.js"
import { maxItemFailures, ServerStream, type GivenUp, type StreamEvents } from "../../../daemon/sync/stream.js"
import { createGroup, postCommit, reserve } from "../../helpers/groups.js"
import { fakeWelcome } from "../../helpers/mls.js"
import { startServer } from "../../helpers/server.js"
import { makeEncodedKeyPackages, newUser, uploadKeyPackages, type TestUser } from "../../helpers/users.js"

type GroupItem = Extract<InboxItem, { kind: "welcome" | "removed" }>

/** The real stream client of `user` against the real server, with the group side supplied by the test. */
function streamOf(t: TestContext, url: string, user: TestUser, onItem: (item: GroupItem) => Promise<void>) {
  const dir = mkdtempSync(join(tmpdir(), "stream-"))
  const db = openDatabase(join(dir, "d.db"))
  const client = new ServerClient(url)
  t.after(async () => {
    await client.close()
    db.close()
    rmSync(dir, { recursive: true, force: true })
  })
  const session = new Session(
    client,
    { user: user.name, deviceId: null },
    textSigner({ publicKey: user.publicKey, privateKey: user.seed }),
    () => {},
  )
  const givenUp: { what: GivenUp; error: string }[] = []
  let up: () => void = () => {}
  const events: StreamEvents = {
    onKeyEvent: () => {},
    onGroupItem: onItem,
    onEntries: async () => {},
    onPruned: async () => {},
    onInboxExpired: () => {},
    onGivenUp: async (what, error) => void givenUp.push({ what, error }),
    groupCursors: () => [],
    onState: (isUp) => isUp && up(),
  }
  const make = () => {
    const upNow = new Promise<void>((resolve) => (up = resolve))
    const stream = new ServerStream(
      session,
      new CursorStore(db),
      new SettableClock(),
      events,
      pino({ level: "silent" }),
      {
        baseMs: 1,
        maxMs: 5,
      },
    )
    t.after(() => stream.stop())
    stream.start()
    return { stream, caughtUp: upNow }
  }
  return { make, givenUp }
}

/** Rejects after `ms`: a bound on a wait for an event. */
const within = <T>(p: Promise<T>, ms: number, what: string) =>
  Promise.race([
    p,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms).unref()),
  ])

describe("the server stream", () => {
  it("gives up an inbox item that keeps failing, acknowledges it and goes on with the next", async (t) => {
    const s = await startServer(t)
    const bob = await newUser(s.url, "bob")
    const mallory = await newUser(s.url, "mallory")
    assert.equal((await uploadKeyPackages(s.url, bob, await makeEncodedKeyPackages(bob, 2))).status, 200)
    const welcome = async () => {
      const g = await createGroup(s.url, mallory)
      const r = await postCommit(s.url, mallory, g, {
        keyPackages: [await reserve(s.url, mallory, "bob")],
        welcome: fakeWelcome(),
      })
      assert.equal(r.status, 201)
      return g.id
    }
    const poison = await welcome()
    const fine = await welcome()

    let attempts = 0
    let handled: (id: string) => void = () => {}
    const fineHandled = new Promise<string>((resolve) => (handled = resolve))
    const { make, givenUp } = streamOf(t, s.url, bob, async (item) => {
      if (item.groupId === poison) {
        attempts++
        throw new Error("this one always fails")
      }
      handled(item.groupId)
    })
    const first = make()
    assert.equal(await within(fineHandled, 30_000, "the next item"), fine)
    assert.equal(attempts, maxItemFailures)
    assert.equal(givenUp.length, 1)
    assert.equal(givenUp[0]!.what.kind, "inbox")
    assert.equal(givenUp[0]!.what.kind === "inbox" && givenUp[0]!.what.item.groupId, poison)
    assert.match(givenUp[0]!.error, /always fails/)
    await within(first.caughtUp, 10_000, "caught up")
    first.stream.stop()

    // Both were acknowledged on the server: a new connection catches up with neither.
    let again = 0
    const second = streamOf(t, s.url, bob, async () => void again++).make()
    await within(second.caughtUp, 10_000, "caught up again")
    assert.equal(again, 0)
  })
})
