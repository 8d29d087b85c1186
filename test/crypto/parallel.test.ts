// Curve25519 batches shared between the calling thread and the worker (crypto/parallel.ts), checked against
// OpenSSL through node:crypto: verdicts, DH results, the recovery when a claimed item is never finished, and the
// spare key pairs the worker draws ahead.
import assert from "node:assert/strict"
import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, sign } from "node:crypto"
import { describe, it } from "node:test"
import { allocate, dhOutputSize, kinds, status, views } from "../../crypto/batchJobs.js"
import {
  ed25519Batch,
  ed25519Verdicts,
  parallelBatch,
  runBatch,
  spareX25519Ready,
  takeSpareX25519,
  x25519EphemeralAll,
} from "../../crypto/parallel.js"
import type { VerifyJob } from "../../crypto/parallel.js"

const raw = (key: ReturnType<typeof createPublicKey>) =>
  Buffer.from(key.export({ format: "jwk" }).x ?? "", "base64url") as Uint8Array

/** `count` Ed25519 checks made with OpenSSL; every third has its message changed after signing, so it must fail. */
function verifyJobs(count: number): { jobs: VerifyJob[]; expected: boolean[] } {
  const keys = Array.from({ length: 5 }, () => generateKeyPairSync("ed25519"))
  const expected = Array.from({ length: count }, (_, i) => i % 3 !== 1)
  const jobs = expected.map((valid, i) => {
    const k = keys[i % keys.length]!
    const message = new Uint8Array(50 + i).fill(i)
    const signature = new Uint8Array(sign(null, message, k.privateKey))
    return { publicKey: raw(k.publicKey), message: valid ? message : message.map((b) => b ^ 1), signature }
  })
  return { jobs, expected }
}

describe("parallel Ed25519 checks", () => {
  it("gives OpenSSL's verdict on each signature of a batch large enough for the worker, and of a small one", () => {
    for (const count of [parallelBatch * 4, 3]) {
      const { jobs, expected } = verifyJobs(count)
      assert.deepEqual(ed25519Verdicts(runBatch(ed25519Batch(jobs))), expected)
    }
  })

  it("checks again, on the calling thread, an item claimed by a worker that never answers", () => {
    const { jobs, expected } = verifyJobs(6)
    const sab = ed25519Batch(jobs)
    // Item 0 is claimed as a worker would claim it, and never finished.
    Atomics.add(views(sab).header, 0, 1)
    const result = views(runBatch(sab, 20))
    assert.deepEqual(
      Array.from(result.status),
      expected.map((valid) => (valid ? status.ok : status.failed)),
    )
  })
})

describe("parallel X25519 ephemeral DH", () => {
  it("makes a fresh ephemeral key per recipient whose DH the recipient computes too, and refuses a low-order key", () => {
    const recipients = Array.from({ length: parallelBatch * 2 }, () => generateKeyPairSync("x25519"))
    const lowOrder = 7 // an all-zero u-coordinate: every DH with it is all zero
    const keys = recipients.map((r, i) => (i === lowOrder ? new Uint8Array(32) : raw(r.publicKey)))
    const results = x25519EphemeralAll(keys)
    assert.equal(results[lowOrder], undefined)
    const encs = new Set<string>()
    for (const [i, r] of recipients.entries()) {
      if (i === lowOrder) continue
      const result = results[i]
      assert.ok(result !== undefined, `recipient ${i}`)
      encs.add(Buffer.from(result.enc).toString("hex"))
      const enc = createPublicKey({
        key: { kty: "OKP", crv: "X25519", x: Buffer.from(result.enc).toString("base64url") },
        format: "jwk",
      })
      const theirs = diffieHellman({
        privateKey: createPrivateKey(r.privateKey.export({ format: "pem", type: "pkcs8" })),
        publicKey: enc,
      })
      assert.equal(Buffer.from(result.dh).toString("hex"), theirs.toString("hex"), `recipient ${i}`)
    }
    assert.equal(encs.size, recipients.length - 1)
  })

  it("finishes a DH claimed by a worker that never answers in a copy of the batch, after the stall timeout", () => {
    const recipients = Array.from({ length: 3 }, () => generateKeyPairSync("x25519"))
    const sab = allocate(kinds.x25519Ephemeral, recipients.length, recipients.length * 32)
    const v = views(sab)
    recipients.forEach((r, i) => {
      v.offsets[i] = i * 32
      v.data.set(raw(r.publicKey), i * 32)
    })
    v.offsets[recipients.length] = recipients.length * 32
    // Item 0 is claimed as a worker would claim it, and never finished: unlike a check, a DH draws a fresh key, so
    // the calling thread waits for it and then redoes it in a copy, leaving the abandoned buffer to the old worker.
    Atomics.add(v.header, 0, 1)
    const finished = runBatch(sab, 20)
    assert.notEqual(finished, sab)
    const result = views(finished)
    assert.deepEqual(Array.from(result.status), [status.ok, status.ok, status.ok])
    assert.deepEqual(Array.from(v.output), new Array(v.output.length).fill(0), "the abandoned buffer holds no DH")
    for (const [i, r] of recipients.entries()) {
      const out = result.output.subarray(i * dhOutputSize, (i + 1) * dhOutputSize)
      const enc = createPublicKey({
        key: { kty: "OKP", crv: "X25519", x: Buffer.from(out.subarray(0, 32)).toString("base64url") },
        format: "jwk",
      })
      const theirs = diffieHellman({ privateKey: r.privateKey, publicKey: enc })
      assert.equal(Buffer.from(out.subarray(32)).toString("hex"), theirs.toString("hex"), `recipient ${i}`)
    }
  })
})

/** Event-loop turns until the worker has a spare key pair ready (it starts up through this thread's loop). */
async function untilSpareReady(): Promise<void> {
  const deadline = performance.now() + 10_000
  while (spareX25519Ready() === 0) {
    assert.ok(performance.now() < deadline, "the worker drew no spare key pair within 10 s")
    await new Promise((resolve) => setImmediate(resolve))
  }
}

describe("spare X25519 key pairs", () => {
  it("hands out key pairs the worker drew ahead, each one valid and each one once", async () => {
    takeSpareX25519() // the first take starts the worker filling the slots
    const seen = new Set<string>()
    let spares = 0
    for (let round = 0; round < 3; round++) {
      await untilSpareReady()
      for (let pair = takeSpareX25519(); pair !== undefined; pair = takeSpareX25519()) {
        spares++
        const d = Buffer.from(pair.privateKey).toString("base64url")
        assert.ok(!seen.has(d), "a private key handed out twice")
        seen.add(d)
        // OpenSSL derives the public key from the private one: it must be the one handed out with it.
        const opensslPublic = createPublicKey(
          createPrivateKey({ key: { kty: "OKP", crv: "X25519", d, x: "" }, format: "jwk" }),
        )
        assert.deepEqual(raw(opensslPublic), Buffer.from(pair.publicKey))
      }
    }
    assert.ok(spares >= 3, `took ${spares} spare key pairs over three fills`)
  })
})
