import assert from "node:assert/strict"
import { describe, it } from "node:test"
import { plan, type ServerView } from "../../../daemon/pool/plan.js"
import { defaultPolicy } from "../../../daemon/pool/policy.js"
import type { LocalKey } from "../../../daemon/store/poolStore.js"
import type { KeyState } from "../../../rpc-schema/daemon/pool.js"

const day = 24 * 3600_000
const now = 100 * day
let n = 0
const key = (state: KeyState, o: Partial<LocalKey> = {}): LocalKey => ({
  ref: `k${n++}`,
  state,
  lastResort: false,
  notAfter: now + 10 * day,
  createdAt: now - day,
  uploadedAt: state === "created" ? null : now - day,
  hasSecret: true,
  nextAttemptAt: 0,
  ...o,
})
const keys = (count: number, state: KeyState, o: Partial<LocalKey> = {}) =>
  Array.from({ length: count }, () => key(state, o))
const lr = () => key("available", { lastResort: true })
const view = (available: LocalKey[], reserved: LocalKey[] = [], lastResortRef: string | null = null): ServerView => ({
  available: new Set(available.map((k) => k.ref)),
  reserved: new Set(reserved.map((k) => k.ref)),
  lastResortRef,
})
const kinds = (a: ReturnType<typeof plan>) => a.map((x) => x.kind)

describe("pool plan", () => {
  it("fills an empty pool to the target and makes a last-resort key", () => {
    const a = plan({ keys: [] }, now, defaultPolicy)
    assert.deepEqual(a, [{ kind: "generate", count: 32 }, { kind: "generateLastResort" }])
  })

  it("tops up to the target but never above the cap counting reserved keys", () => {
    const cases: [number, number, number | undefined][] = [
      [7, 25, 25], // 57 held after
      [0, 64, undefined], // at the cap: nothing
      [10, 50, 4], // cap-bound: 64 - 60
      [32, 0, undefined],
    ]
    for (const [available, reserved, generate] of cases) {
      const a = plan(
        { keys: [...keys(available, "available"), ...keys(reserved, "reserved"), lr()] },
        now,
        defaultPolicy,
      )
      const g = a.find((x) => x.kind === "generate")
      assert.equal(g?.kind === "generate" ? g.count : undefined, generate, `${available}/${reserved}`)
    }
  })

  it("withdraws keys close to expiry and counts them as held until they are gone", () => {
    const old = keys(32, "available", { notAfter: now + day })
    const a = plan({ keys: [...old, lr()] }, now, defaultPolicy)
    assert.equal(a.filter((x) => x.kind === "withdraw").length, 32)
    assert.deepEqual(a.at(-1), { kind: "generate", count: 32 })
  })

  it("repairs a divergence: unknown refs withdrawn, created keys adopted, missing keys marked spent", () => {
    const created = key("created")
    const missing = key("available")
    const fine = key("available")
    const noSecret = key("expired", { hasSecret: false })
    const l = lr()
    const server = view([created, fine, noSecret], [], l.ref)
    server.available.add("stranger")
    const a = plan({ keys: [created, missing, fine, noSecret, l] }, now, { ...defaultPolicy, target: 2 })
    const b = plan({ keys: [created, missing, fine, noSecret, l], server }, now, { ...defaultPolicy, target: 2 })
    assert.ok(!kinds(a).includes("withdraw"), "without the server's refs nothing is withdrawn")
    assert.deepEqual(
      b.filter((x) => x.kind !== "generate"),
      [
        { kind: "mark", ref: created.ref, state: "available", why: "as on the server" },
        { kind: "withdraw", ref: noSecret.ref, why: "unknown" },
        { kind: "withdraw", ref: "stranger", why: "unknown" },
        { kind: "mark", ref: missing.ref, state: "spent", why: "absent from the server" },
      ],
    )
  })

  it("purges keys past not_after plus the grace period, whatever their state", () => {
    const gone = [key("spent", { notAfter: now - day - 1 }), key("expired", { notAfter: now - day })]
    const a = plan({ keys: [...gone, ...keys(32, "available"), lr()] }, now, defaultPolicy)
    assert.deepEqual(a, [{ kind: "purge", refs: gone.map((k) => k.ref) }])
  })

  it("keeps a key a pending invitation holds, past its grace too, until the invitation is accepted or declined", () => {
    const held = key("spent", { notAfter: now - 2 * day, heldByInvitation: true })
    const gone = key("spent", { notAfter: now - 2 * day })
    const a = plan({ keys: [held, gone, ...keys(32, "available"), lr()] }, now, defaultPolicy)
    assert.deepEqual(
      a.find((x) => x.kind === "purge"),
      { kind: "purge", refs: [gone.ref] },
    )
  })
})
