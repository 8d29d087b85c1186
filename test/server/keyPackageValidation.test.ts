// The key directory's canonical-encoding check compares a KeyPackage's bytes with a fresh encoding of it, not with the
// bytes the patched ts-mls keeps for a decoded value (those would be the received bytes themselves, whatever they are).
import assert from "node:assert/strict"
import { describe, it } from "node:test"
import { defaultCapabilities, defaultLifetime, generateKeyPackage } from "ts-mls"
import { encodeKeyPackage, keyPackageEncoder, type KeyPackage } from "ts-mls/keyPackage.js"
import { getSuite } from "../../crypto/index.js"
import { isCanonical } from "../../server/services/keyPackageValidation.js"
import { toHex } from "../crypto/vectors.js"

describe("keyPackageValidation: isCanonical", () => {
  it("refuses bytes kept as a KeyPackage's encoding when a fresh encoding of it differs", async () => {
    const credential = { credentialType: "basic" as const, identity: new TextEncoder().encode("alice") }
    const kp = (await generateKeyPackage(credential, defaultCapabilities(), defaultLifetime, [], await getSuite()))
      .publicPackage
    const canonical = encodeKeyPackage(structuredClone(kp))
    assert.equal(canonical[4], 32, "init_key's length, after the version and the cipher suite")
    // What a decoder taking non-minimal lengths (ts-mls without the fixes patch) would keep: that length in 2 bytes.
    const nonMinimal = Uint8Array.from([...canonical.subarray(0, 4), 0x40, 32, ...canonical.subarray(5)])
    const decoded = structuredClone(kp)
    ;(keyPackageEncoder as unknown as { remember(v: KeyPackage, b: Uint8Array): void }).remember(decoded, nonMinimal)
    assert.equal(toHex(encodeKeyPackage(decoded)), toHex(nonMinimal), "the kept bytes are what encoding it writes")
    assert.equal(isCanonical(decoded, nonMinimal), false)
    assert.equal(isCanonical(decoded, canonical), true)
  })
})
