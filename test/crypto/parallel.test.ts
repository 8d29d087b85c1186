// Curve25519 batches shared between the calling thread and the worker (crypto/parallel.ts), checked against
// OpenSSL through node:crypto: verdicts, DH results, and the recovery when a claimed item is never finished.
import assert from "node:assert/strict"
import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, sign } from "node:crypto"
import { describe, it } from "node:test"
import { allocate, dhOutputSize, kinds, status, views } from "../../crypto/batchJobs.js"
import { ed25519Batch, ed25519Verdicts, parallelBatch, runBatch, x25519EphemeralAll } from "../../crypto/parallel.js"
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
