// The native provider gives ts-mls's stock provider's verdict, and the same error class, on published edge cases:
// Ed25519 signatures from "Taming the many EdDSAs" (ed25519-speccheck) and Wycheproof (non-canonical S, small-order,
// identity and non-canonical R and A, mixed-order keys), and X25519 with low-order, non-canonical and twist public keys
// (Wycheproof). Members running either provider must reach the same verdict on every Commit. Vectors: test/fixtures/.
import assert from "node:assert/strict"
import { readFileSync } from "node:fs"
import { describe, it } from "node:test"
import { defaultCryptoProvider, getCiphersuiteFromName } from "ts-mls"
import type { CiphersuiteImpl } from "ts-mls"
import { defaultSuite, nodeCryptoProvider } from "../../crypto/index.js"
import { toHex } from "./vectors.js"

const suite = getCiphersuiteFromName(defaultSuite)
const stock: CiphersuiteImpl = await defaultCryptoProvider.getCiphersuiteImpl(suite)
const native: CiphersuiteImpl = await nodeCryptoProvider.getCiphersuiteImpl(suite)
const fixture = (path: string) => JSON.parse(readFileSync(new URL(`../fixtures/${path}`, import.meta.url), "utf8"))
const hex = (s: string) => Uint8Array.from(Buffer.from(s, "hex"))

/** What a call came to: its value, or the class of what it threw. */
type Outcome = { value: unknown } | { error: string }
async function outcome(call: () => Promise<unknown>): Promise<Outcome> {
  try {
    const value = await call()
    return { value: value instanceof Uint8Array ? toHex(value) : value }
  } catch (e) {
    return { error: e instanceof Error ? e.constructor.name : typeof e }
  }
}

interface SignatureCase {
  name: string
  publicKey: Uint8Array
  message: Uint8Array
  signature: Uint8Array
  /** Wycheproof's expected verdict; the speccheck cases have none (implementations differ on them by design). */
  valid?: boolean
}

const specCheck: SignatureCase[] = fixture("ed25519/cases.json").map(
  (c: { message: string; pub_key: string; signature: string }, i: number) => ({
    name: `speccheck #${i}`,
    publicKey: hex(c.pub_key),
    message: hex(c.message),
    signature: hex(c.signature),
  }),
)
const wycheproofEd25519: SignatureCase[] = fixture("ed25519/eddsa_test.json").testGroups.flatMap(
  (g: { key: { pk: string }; tests: { tcId: number; comment: string; msg: string; sig: string; result: string }[] }) =>
    g.tests.map((t) => ({
      name: `wycheproof eddsa #${t.tcId} ${t.comment}`,
      publicKey: hex(g.key.pk),
      message: hex(t.msg),
      signature: hex(t.sig),
      valid: t.result === "valid",
    })),
)

describe("verdict parity with the stock provider: Ed25519", () => {
  const cases = [...specCheck, ...wycheproofEd25519]
  const verify = (cs: CiphersuiteImpl, c: SignatureCase) =>
    outcome(() => cs.signature.verify(c.publicKey, c.message, c.signature))

  it("has the vectors: 15 speccheck cases (the paper's 12 among them) and 74 Wycheproof tests", () => {
    assert.equal(specCheck.length, 15)
    assert.equal(wycheproofEd25519.length, 74)
  })

  it("gives the stock verdict on every case, one at a time", async () => {
    for (const c of cases) {
      const want = await verify(stock, c)
      if (c.valid !== undefined) assert.deepEqual(want, { value: c.valid }, `stock provider on ${c.name}`)
      assert.deepEqual(await verify(native, c), want, c.name)
    }
    // Both verdicts occur among the speccheck cases (OpenSSL accepts small-order keys and R, libsodium does not).
    const verdicts = await Promise.all(specCheck.map((c) => verify(stock, c)))
    assert.ok(verdicts.some((v) => "value" in v && v.value === true))
    assert.ok(verdicts.some((v) => "value" in v && v.value === false))
  })

  it("gives the stock verdict on every case when all are checked at once (the batch shared with the worker)", async () => {
    const want = await Promise.all(cases.map((c) => verify(stock, c)))
    const got = await Promise.all(cases.map((c) => verify(native, c)))
    for (const [i, c] of cases.entries()) assert.deepEqual(got[i], want[i], c.name)
  })
})

interface XdhCase {
  tcId: number
  comment: string
  public: string
  private: string
  shared: string
  flags: string[]
}

describe("verdict parity with the stock provider: X25519", () => {
  const cases: XdhCase[] = fixture("x25519/x25519_test.json").testGroups[0].tests
  const context = new TextEncoder().encode("verdict parity")
  // HPKE's receiver side with the vector's public key as the sender's ephemeral key: DH(private, public), then the
  // exporter (RFC 9180 §5.3), so the shared secret itself shows in the result. An all-zero DH must be refused (§7.1.4).
  const receive = (cs: CiphersuiteImpl, c: XdhCase) =>
    outcome(async () =>
      cs.hpke.importSecret(await cs.hpke.importPrivateKey(hex(c.private)), context, hex(c.public), 32, context),
    )

  it("has the vectors: 49 Wycheproof tests, 26 of them with an all-zero shared secret", () => {
    assert.equal(cases.length, 49)
    assert.equal(cases.filter((c) => c.flags.includes("ZeroSharedSecret")).length, 26)
  })

  it("refuses every low-order public key and derives the same secret from every other one", async () => {
    for (const c of cases) {
      const name = `wycheproof x25519 #${c.tcId} ${c.comment} [${c.flags.join(", ")}]`
      const want = await receive(stock, c)
      assert.equal("error" in want, c.flags.includes("ZeroSharedSecret"), `stock provider on ${name}`)
      assert.deepEqual(await receive(native, c), want, name)
    }
  })

  it("refuses to seal or export to a low-order public key, with the stock provider's error class", async () => {
    // The sender's side: a fresh ephemeral key against the vector's public key, so only the verdicts can be compared.
    const send = (cs: CiphersuiteImpl, c: XdhCase) =>
      Promise.all([
        outcome(async () => {
          await cs.hpke.seal(await cs.hpke.importPublicKey(hex(c.public)), context, context, context)
          return "sealed"
        }),
        outcome(async () => {
          await cs.hpke.exportSecret(await cs.hpke.importPublicKey(hex(c.public)), context, 32, context)
          return "exported"
        }),
      ])
    for (const c of cases) {
      const name = `wycheproof x25519 #${c.tcId} ${c.comment} [${c.flags.join(", ")}]`
      const want = await send(stock, c)
      const refused = c.flags.includes("ZeroSharedSecret")
      assert.deepEqual(
        want,
        refused ? [{ error: "CryptoError" }, { error: "CryptoError" }] : [{ value: "sealed" }, { value: "exported" }],
        `stock provider on ${name}`,
      )
      assert.deepEqual(await send(native, c), want, name)
    }
  })
})
