/**
 * Seeded randomness for tests that pick random moments or sizes: a failure can be replayed. The seed comes from
 * TEST_SEED when set, else it is drawn; it is printed as a test diagnostic (shown with the test's result) and should be
 * put in assertion messages.
 */
import type { TestContext } from "node:test"

export interface SeededRandom {
  seed: number
  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number
}

export function seededRandom(t: TestContext): SeededRandom {
  const seed = process.env.TEST_SEED ? Number(process.env.TEST_SEED) : Math.floor(Math.random() * 2 ** 32)
  t.diagnostic(`seed ${seed} (replay with TEST_SEED=${seed})`)
  // mulberry32: small, fast, good enough to spread test moments.
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32
  }
  return { seed, int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)) }
}
