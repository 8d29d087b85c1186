// The node:crypto provider against ts-mls's stock provider, primitive by primitive, plus its caches and fallback.
import assert from "node:assert/strict"
import { describe, it } from "node:test"
import { defaultCryptoProvider, getCiphersuiteFromName } from "ts-mls"
import type { CiphersuiteImpl, CiphersuiteName } from "ts-mls"
import { CryptoError, DependencyError } from "ts-mls/mlsError.js"
import { defaultSuite, getSuite, isNativeSuite, nodeCryptoProvider } from "../../crypto/index.js"
import { toHex } from "./vectors.js"

const suite = getCiphersuiteFromName(defaultSuite)
const stock: CiphersuiteImpl = await defaultCryptoProvider.getCiphersuiteImpl(suite)
const native: CiphersuiteImpl = await nodeCryptoProvider.getCiphersuiteImpl(suite)
const bytes = (n: number, seed = 1) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff)
const info = bytes(20, 7)
const aad = bytes(9, 3)
const message = bytes(100, 5)

/** A key pair of `from`'s making, imported into `to` through its raw bytes. */
async function keyPairAcross(from: CiphersuiteImpl, to: CiphersuiteImpl) {
  const kp = await from.hpke.generateKeyPair()
  return {
    fromPublic: kp.publicKey,
    fromPrivate: kp.privateKey,
    toPublic: await to.hpke.importPublicKey(await from.hpke.exportPublicKey(kp.publicKey)),
    toPrivate: await to.hpke.importPrivateKey(await from.hpke.exportPrivateKey(kp.privateKey)),
  }
}

describe("nodeCryptoProvider hash and kdf", () => {
  it("computes the stock provider's digest, MAC, Extract and Expand when given the same input", async () => {
    const key = bytes(32, 9)
    assert.equal(toHex(await native.hash.digest(message)), toHex(await stock.hash.digest(message)))
    const mac = await native.hash.mac(key, message)
    assert.equal(toHex(mac), toHex(await stock.hash.mac(key, message)))
    assert.equal(await native.hash.verifyMac(key, mac, message), true)
    assert.equal(await native.hash.verifyMac(key, mac.subarray(1), message), false)
    mac[0]! ^= 1
    assert.equal(await native.hash.verifyMac(key, mac, message), false)

    const prk = await native.kdf.extract(key, message)
    assert.equal(toHex(prk), toHex(await stock.kdf.extract(key, message)))
    assert.equal(
      toHex(await native.kdf.extract(new Uint8Array(), message)),
      toHex(await stock.kdf.extract(new Uint8Array(), message)),
    )
    for (const length of [12, 16, 32, 33, 100])
      assert.equal(toHex(await native.kdf.expand(prk, info, length)), toHex(await stock.kdf.expand(prk, info, length)))
    assert.equal(native.kdf.size, stock.kdf.size)
  })

  it("returns plain Uint8Arrays rather than Buffers", async () => {
    const kp = await native.hpke.generateKeyPair()
    const sealed = await native.hpke.seal(kp.publicKey, message, info)
    const { signKey } = await native.signature.keygen()
    for (const b of [
      await native.hash.digest(message),
      await native.kdf.expand(bytes(32), info, 16),
      await native.signature.sign(signKey, message),
      await native.hpke.exportPublicKey(kp.publicKey),
      sealed.ct,
      sealed.enc,
      native.rng.randomBytes(16),
    ])
      assert.equal(Object.getPrototypeOf(b), Uint8Array.prototype)
  })
})

describe("nodeCryptoProvider rng", () => {
  it("never hands out the same bytes twice, across refills of its pool, nor wiped ones", () => {
    // 32-byte draws cross the 4 kB pool's refills 40 times; sizes 1..300 mix pooled and direct draws.
    const draws = [
      ...Array.from({ length: 5000 }, () => native.rng.randomBytes(32)),
      ...Array.from({ length: 300 }, (_, i) => native.rng.randomBytes(i + 1)),
    ]
    const seen = new Set(draws.filter((d) => d.length >= 16).map((d) => Buffer.from(d).toString("hex")))
    assert.equal(seen.size, draws.filter((d) => d.length >= 16).length)
    for (const d of draws.filter((d) => d.length >= 8))
      assert.ok(
        d.some((b) => b !== 0),
        "an all-zero draw",
      )
    for (const [i, d] of draws.entries()) assert.equal(d.buffer.byteLength, d.length, `draw ${i} shares its buffer`)
  })
})

describe("nodeCryptoProvider hpke", () => {
  it("opens what the stock provider seals and the stock provider opens what it seals", async () => {
    for (const [from, to] of [
      [stock, native],
      [native, stock],
    ] as const) {
      const keys = await keyPairAcross(to, from)
      const sealed = await from.hpke.seal(keys.toPublic, message, info, aad)
      assert.equal(toHex(await to.hpke.open(keys.fromPrivate, sealed.enc, sealed.ct, info, aad)), toHex(message))
    }
  })

  it("exports the secret the stock provider imports and the reverse", async () => {
    const context = bytes(30, 2)
    for (const [from, to] of [
      [stock, native],
      [native, stock],
    ] as const) {
      const keys = await keyPairAcross(to, from)
      const { enc, secret } = await from.hpke.exportSecret(keys.toPublic, context, 32, info)
      assert.equal(toHex(await to.hpke.importSecret(keys.fromPrivate, context, enc, 32, info)), toHex(secret))
    }
  })

  it("derives the stock provider's key pair from the same ikm", async () => {
    for (const ikm of [bytes(32, 1), bytes(32, 2), bytes(64, 3)]) {
      const a = await native.hpke.deriveKeyPair(ikm)
      const b = await stock.hpke.deriveKeyPair(ikm)
      assert.equal(
        toHex(await native.hpke.exportPublicKey(a.publicKey)),
        toHex(await stock.hpke.exportPublicKey(b.publicKey)),
      )
      assert.equal(
        toHex(await native.hpke.exportPrivateKey(a.privateKey)),
        toHex(await stock.hpke.exportPrivateKey(b.privateKey)),
      )
    }
  })

  it("encrypts with the AEAD exactly as the stock provider does", async () => {
    const key = bytes(16, 4)
    const nonce = bytes(12, 6)
    for (const ad of [aad, undefined]) {
      const ct = await native.hpke.encryptAead(key, nonce, ad, message)
      assert.equal(toHex(ct), toHex(await stock.hpke.encryptAead(key, nonce, ad, message)))
      assert.equal(toHex(await native.hpke.decryptAead(key, nonce, ad, ct)), toHex(message))
    }
  })

  it("throws CryptoError when a ciphertext, tag or kem output is tampered with", async () => {
    const kp = await native.hpke.generateKeyPair()
    const sealed = await native.hpke.seal(kp.publicKey, message, info, aad)
    const flipped = (b: Uint8Array, i: number) => {
      const c = b.slice()
      c[i]! ^= 1
      return c
    }
    const cases: [Uint8Array, Uint8Array, Uint8Array][] = [
      [sealed.enc, flipped(sealed.ct, 0), info],
      [sealed.enc, flipped(sealed.ct, sealed.ct.length - 1), info],
      [flipped(sealed.enc, 3), sealed.ct, info],
      [sealed.enc, sealed.ct, bytes(20, 8)],
      [sealed.enc.subarray(1), sealed.ct, info],
    ]
    for (const [enc, ct, withInfo] of cases)
      await assert.rejects(native.hpke.open(kp.privateKey, enc, ct, withInfo, aad), CryptoError)
    await assert.rejects(native.hpke.decryptAead(bytes(16), bytes(12), undefined, bytes(10)), CryptoError)
    await assert.rejects(native.hpke.importPublicKey(bytes(31)), CryptoError)
  })

  it("seals a large concurrent batch (key pairs shared with the worker thread, one info_hash) that stock opens", async () => {
    // 40 seals in one turn: runs of equal info (equal bytes in distinct arrays, as ts-mls's Welcome makes them) and a
    // different info in between, so a shared info_hash must not leak into the seal after it.
    const keys = await Promise.all(Array.from({ length: 40 }, () => keyPairAcross(stock, native)))
    const infos = keys.map((_, i) => (i >= 10 && i < 13 ? bytes(3000, i) : bytes(3000, 1)))
    const plaintexts = keys.map((_, i) => bytes(50 + i, i))
    const sealed = await Promise.all(keys.map((k, i) => native.hpke.seal(k.toPublic, plaintexts[i]!, infos[i]!)))
    assert.equal(new Set(sealed.map((s) => toHex(s.enc))).size, keys.length, "fresh ephemeral key per seal")
    for (const [i, k] of keys.entries()) {
      const opened = await stock.hpke.open(k.fromPrivate, sealed[i]!.enc, sealed[i]!.ct, infos[i]!)
      assert.equal(toHex(opened), toHex(plaintexts[i]!))
    }
    // With another seal's info the tag does not verify.
    await assert.rejects(stock.hpke.open(keys[11]!.fromPrivate, sealed[11]!.enc, sealed[11]!.ct, infos[0]!))
    await assert.rejects(stock.hpke.open(keys[13]!.fromPrivate, sealed[13]!.enc, sealed[13]!.ct, infos[12]!))
  })

  it("rejects each bad seal of a large batch with CryptoError and still seals the others", async () => {
    const keys = await Promise.all(Array.from({ length: 12 }, () => keyPairAcross(stock, native)))
    const foreign = await stock.hpke.generateKeyPair()
    const results = await Promise.allSettled(
      keys.map(async (k, i) =>
        native.hpke.seal(
          // A foreign handle fails before the batch; an all-zero X25519 key fails its DH inside it.
          i === 5 ? foreign.publicKey : i === 6 ? await native.hpke.importPublicKey(new Uint8Array(32)) : k.toPublic,
          message,
          info,
        ),
      ),
    )
    for (const [i, r] of results.entries()) {
      if (i === 5 || i === 6) assert.ok(r.status === "rejected" && r.reason instanceof CryptoError)
      else assert.equal(r.status, "fulfilled")
    }
  })

  it("refuses a key handle made by another provider", async () => {
    const kp = await stock.hpke.generateKeyPair()
    await assert.rejects(native.hpke.seal(kp.publicKey, message, info), CryptoError)
  })
})

describe("nodeCryptoProvider signature", () => {
  it("signs exactly as the stock provider with keys from either keygen, short messages and long", async () => {
    // 100 bytes: libsodium signs and checks; 16 kB: OpenSSL signs, libsodium checks; 100 kB: OpenSSL does both.
    for (const length of [100, 16 * 1024, 100 * 1024]) {
      const signed = bytes(length, 5)
      const other = bytes(length, 6)
      for (const keys of [await stock.signature.keygen(), await native.signature.keygen()]) {
        // Ed25519 is deterministic, so the two must agree byte for byte.
        const signature = await native.signature.sign(keys.signKey, signed)
        assert.equal(toHex(signature), toHex(await stock.signature.sign(keys.signKey, signed)), `${length} bytes`)
        assert.equal(await stock.signature.verify(keys.publicKey, signed, signature), true)
        assert.equal(await native.signature.verify(keys.publicKey, signed, signature), true)
        assert.equal(await native.signature.verify(keys.publicKey, other, signature), false)
        assert.equal(await native.signature.verify(keys.publicKey.subarray(1), signed, signature), false)
        assert.equal(await native.signature.verify(keys.publicKey, signed, signature.subarray(1)), false)
      }
    }
  })

  it("signs with the new key when the caller overwrites its key array in place", async () => {
    const first = await native.signature.keygen()
    const second = await native.signature.keygen()
    const signKey = first.signKey.slice()
    assert.equal(
      await native.signature.verify(first.publicKey, message, await native.signature.sign(signKey, message)),
      true,
    )
    signKey.set(second.signKey)
    const signature = await native.signature.sign(signKey, message)
    assert.equal(await native.signature.verify(second.publicKey, message, signature), true)
    assert.equal(await native.signature.verify(first.publicKey, message, signature), false)
  })

  it("verifies a large concurrent batch (shared with the worker thread) with the right answer for each", async () => {
    const keys = await Promise.all(Array.from({ length: 8 }, () => native.signature.keygen()))
    const checks = Array.from({ length: 40 }, (_, i) => {
      const k = keys[i % keys.length]!
      const m = bytes(64, i)
      return { k, m, valid: i % 7 !== 3 }
    })
    const signatures = await Promise.all(checks.map((c) => native.signature.sign(c.k.signKey, c.m)))
    const results = await Promise.all(
      checks.map((c, i) => native.signature.verify(c.k.publicKey, c.valid ? c.m : bytes(64, 1000 + i), signatures[i]!)),
    )
    assert.deepEqual(
      results,
      checks.map((c) => c.valid),
    )
  })

  it("accepts exactly what the stock provider (OpenSSL) accepts, also where libsodium alone would refuse", async () => {
    // The identity point is a public key of small order: R = identity and S = 0 satisfy the verification equation
    // for any message. libsodium refuses such keys, OpenSSL accepts the signature, and members of one group must
    // agree whatever provider they run.
    const identity = Uint8Array.from({ length: 32 }, (_, i) => (i === 0 ? 1 : 0))
    const trivial = new Uint8Array(64)
    trivial.set(identity)
    assert.equal(await stock.signature.verify(identity, message, trivial), true)
    assert.equal(await native.signature.verify(identity, message, trivial), true)
    const inBatch = await Promise.all(
      Array.from({ length: 40 }, (_, i) => native.signature.verify(identity, bytes(30, i), trivial)),
    )
    assert.deepEqual(
      inBatch,
      inBatch.map(() => true),
    )
    // S = 1 breaks the equation: refused by both.
    trivial[32] = 1
    assert.equal(await stock.signature.verify(identity, message, trivial), false)
    assert.equal(await native.signature.verify(identity, message, trivial), false)
  })

  it("returns false rather than throwing for a malformed public key or signature", async () => {
    const keys = await native.signature.keygen()
    const signature = await native.signature.sign(keys.signKey, message)
    assert.equal(await native.signature.verify(keys.publicKey.subarray(1), message, signature), false)
    assert.equal(await native.signature.verify(keys.publicKey, message, signature.subarray(1)), false)
  })
})

describe("nodeCryptoProvider suites", () => {
  it("covers the X25519/X448 and EdDSA suites and hands the others to the stock provider", async () => {
    const covered: CiphersuiteName[] = [
      "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519",
      "MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519",
      "MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448",
      "MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448",
    ]
    for (const name of covered) assert.equal(isNativeSuite(name), true, name)
    const p256 = getCiphersuiteFromName("MLS_128_DHKEMP256_AES128GCM_SHA256_P256")
    assert.equal(isNativeSuite(p256.name), false)
    // The stock provider needs an optional dependency for P-256 signatures; the fallback fails the same way.
    const stockError = await defaultCryptoProvider.getCiphersuiteImpl(p256).then(
      () => undefined,
      (e: unknown) => e,
    )
    assert.ok(stockError instanceof DependencyError)
    await assert.rejects(nodeCryptoProvider.getCiphersuiteImpl(p256), { message: stockError.message })
  })

  it("gives the same native suite on every getSuite call", async () => {
    const a = await getSuite()
    assert.equal(a, await getSuite(defaultSuite))
    assert.equal(a.name, defaultSuite)
    assert.equal(a.hpke.keyLength, 16)
    assert.equal(a.hpke.nonceLength, 12)
    const kp = await a.hpke.generateKeyPair()
    assert.equal(toHex(await a.hpke.exportPublicKey(kp.publicKey)).length, 64)
  })
})
