import assert from "node:assert/strict"
import { describe, it } from "node:test"
import { backoffMs } from "../../daemon/backoff.js"

describe("backoffMs", () => {
  it("doubles a ceiling from the base up to the cap, and draws from its upper half", () => {
    const low = () => 0
    const high = () => 1
    const cases: [number, number, number][] = [
      // failures, least, most (base 1000, cap 30 000)
      [0, 0, 0],
      [1, 500, 1000],
      [2, 1000, 2000],
      [3, 2000, 4000],
      [5, 8000, 16_000],
      [6, 15_000, 30_000],
      [60, 15_000, 30_000],
    ]
    for (const [failures, least, most] of cases) {
      assert.equal(backoffMs(failures, 1000, 30_000, low), least, `${failures} failures, lowest draw`)
      assert.equal(backoffMs(failures, 1000, 30_000, high), most, `${failures} failures, highest draw`)
      const d = backoffMs(failures, 1000, 30_000)
      assert.ok(d >= least && d <= most, `${failures} failures: ${d}`)
    }
  })
})
