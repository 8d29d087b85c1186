// The daemon's event bus over a real SQLite file: listeners hear of an event only once the transaction that recorded
// it has committed, never of one that rolled back, and in order.
import assert from "node:assert/strict"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { after, describe, it } from "node:test"
import Database from "better-sqlite3"
import { pino } from "pino"
import { SettableClock } from "../../daemon/clock.js"
import { EventBus } from "../../daemon/events.js"
import { openDatabase } from "../../daemon/store/database.js"
import { EventStore } from "../../daemon/store/eventStore.js"
import type { StoredEvent } from "../../daemon/store/eventStore.js"

const dir = mkdtempSync(join(tmpdir(), "mls-events-"))
after(() => rmSync(dir, { recursive: true, force: true }))

/** A notification whose `server` field tells the emits apart. */
const linkDown = (server: string) => ({ state: "offline" as const, server, error: null })

describe("EventBus", () => {
  it("delivers an event after its transaction commits, as another connection sees it, and never a rolled-back one", async () => {
    const path = join(dir, "events.db")
    const db = openDatabase(path)
    const reader = new Database(path, { readonly: true })
    const bus = new EventBus(new EventStore(db), new SettableClock(), pino({ level: "silent" }))
    const heard: { event: StoredEvent; visibleElsewhere: boolean }[] = []
    bus.on((event) => {
      const row = reader.prepare("SELECT id FROM events WHERE id = ?").get(event.id)
      heard.push({ event, visibleElsewhere: row !== undefined })
    })

    db.transaction(() => {
      bus.emit("connection.changed", linkDown("first"))
      assert.equal(heard.length, 0, "not while the transaction is open")
    })()
    assert.throws(() =>
      db.transaction(() => {
        bus.emit("connection.changed", linkDown("rolled back"))
        throw new Error("abort")
      })(),
    )
    bus.emit("connection.changed", linkDown("outside a transaction"))
    await Promise.resolve()

    assert.deepEqual(
      heard.map((h) => [(h.event.params as { server: string }).server, h.visibleElsewhere]),
      [
        ["first", true],
        ["outside a transaction", true],
      ],
    )
    const [first, second] = heard.map((h) => h.event)
    assert.ok(first !== undefined && second !== undefined && first.id < second.id)
    assert.equal((first.params as { eventId: number }).eventId, first.id)
    reader.close()
    db.close()
  })
  it("hands each event to every listener even when one of them throws, and logs that one", async () => {
    const db = openDatabase(join(dir, "listeners.db"))
    const logged: string[] = []
    const log = pino({ level: "error" }, { write: (line: string) => void logged.push(line) })
    const bus = new EventBus(new EventStore(db), new SettableClock(), log)
    const heard: string[] = []
    bus.on(() => {
      throw new Error("connection gone")
    })
    bus.on((event) => heard.push((event.params as { server: string }).server))
    bus.emit("connection.changed", linkDown("one"))
    bus.emit("connection.changed", linkDown("two"))
    await Promise.resolve()
    assert.deepEqual(heard, ["one", "two"])
    assert.equal(logged.length, 2)
    assert.match(logged[0]!, /notification listener failed/)
    db.close()
  })
})
