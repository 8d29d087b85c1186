// RFC 9180 HPKE, base mode, for a DHKEM over X25519/X448: the single-shot seal/open ts-mls uses for EncryptWithLabel
// (RFC 9420 §5.1.3), the exporter for external joins (§12.4.3.2), and DeriveKeyPair for TreeKEM.
import type { Hpke, PrivateKey, PublicKey } from "ts-mls"
import { CryptoError } from "ts-mls/mlsError.js"
import { open, seal } from "./aead.js"
import { concat, uint16, utf8 } from "./bytes.js"
import { expand, extract } from "./kdf.js"
import { dhCurves, keySizes } from "./okp.js"
import { x25519EphemeralAll } from "./parallel.js"
import type { HashParams, KemCurve, NativeSuite } from "./suites.js"

/**
 * The handles ts-mls gets for HPKE keys. ts-mls treats PublicKey/PrivateKey as opaque: it only passes them back into
 * the same Hpke object (seal, open, exportSecret, importSecret, export*Key), so these are cast to those types. The
 * public half of a derived key is computed on first use: TreeKEM derives many key pairs of which it exports only one
 * half.
 */
class NodePrivateKey {
  readonly type = "private"
  #publicKey: Uint8Array | undefined

  constructor(
    readonly curve: KemCurve,
    readonly raw: Uint8Array,
  ) {}

  get publicKey(): Uint8Array {
    return (this.#publicKey ??= dhCurves[this.curve].publicKey(this.raw))
  }
}

class NodePublicKey {
  readonly type = "public"
  #raw: Uint8Array | undefined

  constructor(
    readonly curve: KemCurve,
    raw: Uint8Array | undefined,
    readonly derivedFrom?: NodePrivateKey,
  ) {
    this.#raw = raw
  }

  get raw(): Uint8Array {
    if (this.#raw !== undefined) return this.#raw
    if (this.derivedFrom === undefined) throw new CryptoError("public key without bytes")
    return (this.#raw = this.derivedFrom.publicKey)
  }
}

const empty = new Uint8Array(0)
const hpkeV1 = utf8("HPKE-v1")
const labels = {
  dkpPrk: utf8("dkp_prk"),
  sk: utf8("sk"),
  eaePrk: utf8("eae_prk"),
  sharedSecret: utf8("shared_secret"),
  pskIdHash: utf8("psk_id_hash"),
  infoHash: utf8("info_hash"),
  secret: utf8("secret"),
  key: utf8("key"),
  baseNonce: utf8("base_nonce"),
  exp: utf8("exp"),
  sec: utf8("sec"),
}
const modeBase = new Uint8Array([0x00])

function labeledExtract(h: HashParams, suiteId: Uint8Array, salt: Uint8Array, label: Uint8Array, ikm: Uint8Array) {
  return extract(h, salt, [hpkeV1, suiteId, label, ikm])
}

function labeledExpand(
  h: HashParams,
  suiteId: Uint8Array,
  prk: Uint8Array,
  label: Uint8Array,
  info: Uint8Array,
  length: number,
) {
  return expand(h, prk, [uint16(length), hpkeV1, suiteId, label, info], length)
}

export function makeHpke(suite: NativeSuite): Hpke {
  const { kem, kdf, aead } = suite
  const kemSuiteId = concat([utf8("KEM"), uint16(kem.id)])
  const hpkeSuiteId = concat([utf8("HPKE"), uint16(kem.id), uint16(kdf.id), uint16(aead.id)])
  // Base mode has no PSK, so psk_id_hash is a constant of the suite (RFC 9180 §5.1).
  const pskIdHash = labeledExtract(kdf, hpkeSuiteId, empty, labels.pskIdHash, empty)

  function sharedSecret(dh: Uint8Array, enc: Uint8Array, recipient: Uint8Array): Uint8Array {
    const eaePrk = labeledExtract(kem.kdf, kemSuiteId, empty, labels.eaePrk, dh)
    return labeledExpand(kem.kdf, kemSuiteId, eaePrk, labels.sharedSecret, concat([enc, recipient]), kem.secretSize)
  }

  const curve = dhCurves[kem.curve]

  function encap(pkR: NodePublicKey): { shared: Uint8Array; enc: Uint8Array } {
    const ephemeral = curve.generate()
    try {
      const dh = curve.dh(ephemeral.privateKey, pkR.raw)
      const shared = sharedSecret(dh, ephemeral.publicKey, pkR.raw)
      dh.fill(0)
      return { shared, enc: ephemeral.publicKey }
    } finally {
      ephemeral.privateKey.fill(0) // used once: RFC 9180's ephemeral key
    }
  }

  let sealQueue: SealRequest[] = []

  /**
   * Encap's DH and info_hash for a seal. ts-mls seals a Welcome's group secrets for all new members concurrently (99
   * seals for a Commit adding 99 members), all with the same info (the encrypted GroupInfo, ~30 kB for 100 members).
   * Requests made in one event-loop turn are collected: consecutive requests with equal info share one info_hash, and
   * the X25519 key pairs and DHs of the batch are shared between this thread and the worker (parallel.ts). Every seal
   * still has its own fresh ephemeral key; nothing outlives the batch.
   */
  function encapForSeal(pkR: NodePublicKey, info: Uint8Array): Promise<PreparedSeal> {
    return new Promise((resolve, reject) => {
      if (sealQueue.push({ recipient: pkR.raw, info, resolve, reject }) === 1) setImmediate(encapQueued)
    })
  }

  function encapQueued(): void {
    const batch = sealQueue
    sealQueue = []
    let encaps: ({ enc: Uint8Array; dh: Uint8Array } | undefined)[]
    try {
      encaps = encapAll(batch.map((r) => r.recipient))
    } catch (e) {
      for (const r of batch) r.reject(asCryptoError(e))
      return
    }
    let previous: { info: Uint8Array; infoHash: Uint8Array } | undefined
    for (const [i, r] of batch.entries()) {
      try {
        const encap = encaps[i]
        if (encap === undefined) throw new CryptoError(`${kem.curve} produced the all-zero shared secret`)
        const infoHash =
          previous !== undefined && equalBytes(previous.info, r.info) ? previous.infoHash : infoHashOf(r.info)
        previous = { info: r.info, infoHash }
        const shared = sharedSecret(encap.dh, encap.enc, r.recipient)
        encap.dh.fill(0)
        r.resolve({ shared, enc: encap.enc, infoHash })
      } catch (e) {
        r.reject(asCryptoError(e))
      }
    }
  }

  /** An ephemeral key pair and its DH per recipient; undefined where the DH is all zero. */
  function encapAll(recipients: Uint8Array[]): ({ enc: Uint8Array; dh: Uint8Array } | undefined)[] {
    if (kem.curve === "X25519") return x25519EphemeralAll(recipients)
    return recipients.map((recipient) => {
      const ephemeral = curve.generate()
      try {
        return { enc: ephemeral.publicKey, dh: curve.dh(ephemeral.privateKey, recipient) }
      } catch {
        return undefined
      } finally {
        ephemeral.privateKey.fill(0)
      }
    })
  }

  function decap(enc: Uint8Array, skR: NodePrivateKey): Uint8Array {
    return sharedSecret(curve.dh(skR.raw, checked(kem.curve, enc)), enc, skR.publicKey)
  }

  /** The key schedule's secret and key_schedule_context (RFC 9180 §5.1), from which key, nonce and exporter come. */
  function infoHashOf(info: Uint8Array): Uint8Array {
    return labeledExtract(kdf, hpkeSuiteId, empty, labels.infoHash, info)
  }

  function schedule(shared: Uint8Array, infoHash: Uint8Array): { secret: Uint8Array; context: Uint8Array } {
    const context = concat([modeBase, pskIdHash, infoHash])
    return { secret: labeledExtract(kdf, hpkeSuiteId, shared, labels.secret, empty), context }
  }

  // Single-shot seal/open use sequence number 0, so the nonce is base_nonce itself.
  function keyAndNonce(shared: Uint8Array, infoHash: Uint8Array): { key: Uint8Array; nonce: Uint8Array } {
    const { secret, context } = schedule(shared, infoHash)
    return {
      key: labeledExpand(kdf, hpkeSuiteId, secret, labels.key, context, aead.keySize),
      nonce: labeledExpand(kdf, hpkeSuiteId, secret, labels.baseNonce, context, aead.nonceSize),
    }
  }

  function exported(shared: Uint8Array, info: Uint8Array, exporterContext: Uint8Array, length: number): Uint8Array {
    const { secret, context } = schedule(shared, infoHashOf(info))
    const exporterSecret = labeledExpand(kdf, hpkeSuiteId, secret, labels.exp, context, kdf.size)
    return labeledExpand(kdf, hpkeSuiteId, exporterSecret, labels.sec, exporterContext, length)
  }

  function deriveKeyPair(ikm: Uint8Array): { privateKey: NodePrivateKey; publicKey: NodePublicKey } {
    const dkpPrk = labeledExtract(kem.kdf, kemSuiteId, empty, labels.dkpPrk, ikm)
    const sk = labeledExpand(kem.kdf, kemSuiteId, dkpPrk, labels.sk, empty, kem.keySize)
    const privateKey = new NodePrivateKey(kem.curve, sk)
    return { privateKey, publicKey: new NodePublicKey(kem.curve, undefined, privateKey) }
  }

  return {
    async seal(publicKey, plaintext, info, aad) {
      const { shared, enc, infoHash } = await encapForSeal(ownPublic(publicKey), info)
      const { key, nonce } = keyAndNonce(shared, infoHash)
      return { ct: seal(aead, key, nonce, aad ?? empty, plaintext), enc }
    },
    async open(privateKey, kemOutput, ciphertext, info, aad) {
      const { key, nonce } = keyAndNonce(
        rethrow(() => decap(kemOutput, ownPrivate(privateKey))),
        infoHashOf(info),
      )
      return open(aead, key, nonce, aad ?? empty, ciphertext)
    },
    async exportSecret(publicKey, exporterContext, length, info) {
      const { shared, enc } = rethrow(() => encap(ownPublic(publicKey)))
      return { enc, secret: exported(shared, info, exporterContext, length) }
    },
    async importSecret(privateKey, exporterContext, kemOutput, length, info) {
      const shared = rethrow(() => decap(kemOutput, ownPrivate(privateKey)))
      return exported(shared, info, exporterContext, length)
    },
    async importPrivateKey(k) {
      return asPrivate(
        new NodePrivateKey(
          kem.curve,
          rethrow(() => checked(kem.curve, k)),
        ),
      )
    },
    async importPublicKey(k) {
      return asPublic(
        new NodePublicKey(
          kem.curve,
          rethrow(() => checked(kem.curve, k)),
        ),
      )
    },
    async exportPublicKey(k) {
      return ownPublic(k).raw.slice()
    },
    async exportPrivateKey(k) {
      return ownPrivate(k).raw.slice()
    },
    async encryptAead(key, nonce, aad, plaintext) {
      return seal(aead, key, nonce, aad ?? empty, plaintext)
    },
    async decryptAead(key, nonce, aad, ciphertext) {
      return open(aead, key, nonce, aad ?? empty, ciphertext)
    },
    async deriveKeyPair(ikm) {
      const { privateKey, publicKey } = deriveKeyPair(ikm)
      return { privateKey: asPrivate(privateKey), publicKey: asPublic(publicKey) }
    },
    async generateKeyPair() {
      const { privateKey, publicKey } = curve.generate()
      return {
        privateKey: asPrivate(new NodePrivateKey(kem.curve, privateKey)),
        publicKey: asPublic(new NodePublicKey(kem.curve, publicKey)),
      }
    },
    keyLength: aead.keySize,
    nonceLength: aead.nonceSize,
  }
}

interface PreparedSeal {
  shared: Uint8Array
  enc: Uint8Array
  infoHash: Uint8Array
}

interface SealRequest {
  recipient: Uint8Array
  info: Uint8Array
  resolve: (p: PreparedSeal) => void
  reject: (e: unknown) => void
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a === b || (a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(b))
}

function asCryptoError(e: unknown): CryptoError {
  return e instanceof CryptoError ? e : new CryptoError(`HPKE: ${e instanceof Error ? e.message : String(e)}`)
}

/** A private copy of the caller's key bytes, of the curve's size. */
function checked(curve: KemCurve, k: Uint8Array): Uint8Array {
  const size = keySizes[curve]
  if (k.length !== size) throw new CryptoError(`${curve} key must be ${size} bytes, got ${k.length}`)
  return k.slice()
}

/** Errors surface as ts-mls's CryptoError, as the stock provider's do. */
function rethrow<T>(f: () => T): T {
  try {
    return f()
  } catch (e) {
    throw asCryptoError(e)
  }
}

function ownPublic(k: PublicKey): NodePublicKey {
  const key: unknown = k
  if (!(key instanceof NodePublicKey)) throw new CryptoError("HPKE public key was not made by the node:crypto provider")
  return key
}

function ownPrivate(k: PrivateKey): NodePrivateKey {
  const key: unknown = k
  if (!(key instanceof NodePrivateKey))
    throw new CryptoError("HPKE private key was not made by the node:crypto provider")
  return key
}

function asPublic(k: NodePublicKey): PublicKey {
  return k as unknown as PublicKey
}

function asPrivate(k: NodePrivateKey): PrivateKey {
  return k as unknown as PrivateKey
}
