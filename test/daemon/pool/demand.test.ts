import assert from "node:assert/strict"
import { describe, it } from "node:test"
import { smoothedRate, targetInForce } from "../../../daemon/pool/demand.js"
import { defaultPolicy } from "../../../daemon/pool/policy.js"

const hour = 3600_000

describe("adaptive target", () => {
  const cases = [
    { name: "no demand: the minimum", adaptive: true, rate: 0, peak: 0, target: 32, reason: "minimum" },
    { name: "a burst the minimum covers", adaptive: true, rate: 5, peak: 21, target: 32, reason: "minimum" },
    { name: "a larger burst, with headroom", adaptive: true, rate: 5, peak: 30, target: 45, reason: "peak" },
    { name: "a rate above the bursts", adaptive: true, rate: 300, peak: 20, target: 50, reason: "rate" },
    { name: "more than the cap", adaptive: true, rate: 0, peak: 50, target: 64, reason: "cap" },
    { name: "fixed, whatever the demand", adaptive: false, rate: 300, peak: 50, target: 32, reason: "fixed" },
  ] as const
  for (const c of cases) {
    it(c.name, () => {
      const d = targetInForce(
        { ...defaultPolicy, adaptive: c.adaptive },
        { reservationsPerHour: c.rate, peakBurst: c.peak, peakAt: c.peak > 0 ? 1 : null },
      )
      assert.deepEqual([d.target, d.reason], [c.target, c.reason])
      assert.ok(d.why.length > 0)
    })
  }

  it("smooths the rate: a steady rate reads itself, a burst fades", () => {
    const now = 100 * hour
    // One reservation a minute for 8 hours.
    const steady = Array.from({ length: 8 * 60 }, (_, i) => now - i * 60_000)
    assert.ok(Math.abs(smoothedRate(steady, now) - 60) < 1.5, `${smoothedRate(steady, now)}`)
    const burst = Array.from({ length: 100 }, () => now - 3 * hour)
    assert.ok(Math.abs(smoothedRate(burst, now) - 100 * Math.exp(-3)) < 1e-9)
    assert.equal(smoothedRate([], now), 0)
  })
})
