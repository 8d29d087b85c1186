import assert from "node:assert/strict"
import { describe, it } from "node:test"
import { sameBytes } from "../../shared/bytes.js"

describe("sameBytes", () => {
  const cases: [string, Uint8Array, Uint8Array, boolean][] = [
    ["equal", Uint8Array.of(1, 2, 3), Uint8Array.of(1, 2, 3), true],
    ["empty", new Uint8Array(0), new Uint8Array(0), true],
    ["one byte differs", Uint8Array.of(1, 2, 3), Uint8Array.of(1, 2, 4), false],
    ["a prefix", Uint8Array.of(1, 2), Uint8Array.of(1, 2, 3), false],
    ["a Buffer and a Uint8Array", Buffer.from([7, 8]), Uint8Array.of(7, 8), true],
    ["a view into a larger buffer", new Uint8Array(Uint8Array.of(0, 5, 6, 0).buffer, 1, 2), Uint8Array.of(5, 6), true],
  ]
  for (const [name, a, b, want] of cases) {
    it(`says ${want} for ${name}`, () => {
      assert.equal(sameBytes(a, b), want)
      assert.equal(sameBytes(b, a), want)
    })
  }
})
