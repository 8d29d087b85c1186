// RFC 9180 HPKE, base mode, for a DHKEM over X25519/X448 on node:crypto: the single-shot seal/open ts-mls uses for
// EncryptWithLabel (RFC 9420 §5.1.3), the exporter for external joins (§12.4.3.2), and DeriveKeyPair for TreeKEM.
import { diffieHellman } from "node:crypto"
import type { KeyObject } from "node:crypto"
import type { Hpke, PrivateKey, PublicKey } from "ts-mls"
import { CryptoError } from "ts-mls/mlsError.js"
import { open, seal } from "./aead.js"
import { concat, toBytes, uint16, utf8 } from "./bytes.js"
import { expand, extract } from "./kdf.js"
import {
  generateEphemeral,
  generateEphemeralAsync,
  generateRaw,
  importPrivate,
  importPublic,
  keySizes,
  publicBytes,
} from "./okp.js"
import type { HashParams, KemCurve, NativeSuite } from "./suites.js"

/**
 * The handles ts-mls gets for HPKE keys. ts-mls treats PublicKey/PrivateKey as opaque: it only passes them back into
 * the same Hpke object (seal, open, exportSecret, importSecret, export*Key), so these are cast to those types. Key
 * objects and the public half of a derived key are computed on first use: TreeKEM derives many key pairs of which
 * it exports only one half.
 */
class NodePrivateKey {
  readonly type = "private"
  #key: KeyObject | undefined
  #publicKey: Uint8Array | undefined

  constructor(
    readonly curve: KemCurve,
    readonly raw: Uint8Array,
  ) {}

  get key(): KeyObject {
    return (this.#key ??= importPrivate(this.curve, this.raw))
  }

  get publicKey(): Uint8Array {
    return (this.#publicKey ??= publicBytes(this.curve, this.key))
  }
}

class NodePublicKey {
  readonly type = "public"
  #key: KeyObject | undefined
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

  get key(): KeyObject {
    return (this.#key ??= importPublic(this.curve, this.raw))
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

  function encap(pkR: NodePublicKey): { shared: Uint8Array; enc: Uint8Array } {
    const ephemeral = generateEphemeral(kem.curve)
    const dh = dhOrThrow(ephemeral.privateKey, pkR.key)
    return { shared: sharedSecret(dh, ephemeral.publicKey, pkR.raw), enc: ephemeral.publicKey }
  }

  let sealQueue: SealRequest[] = []

  /**
   * What seal needs before its DH: an ephemeral key pair and info_hash. ts-mls seals a Welcome's group secrets for all
   * new members concurrently (99 seals for a Commit adding 99 members), all with the same info (the encrypted
   * GroupInfo, ~30 kB for 100 members). Requests made in one event-loop turn are collected: consecutive requests with
   * equal info share one info_hash, and a large batch has its key pairs generated on libuv's thread pool while this
   * thread does the DH, key schedule and AEAD of the pairs already made. Nothing outlives the batch.
   */
  function prepareSeal(info: Uint8Array): Promise<PreparedSeal> {
    return new Promise((resolve, reject) => {
      if (sealQueue.push({ info, resolve, reject }) === 1) setImmediate(prepareQueued)
    })
  }

  function prepareQueued(): void {
    const batch = sealQueue
    sealQueue = []
    const pool = batch.length >= poolBatch
    let previous: { info: Uint8Array; infoHash: Uint8Array } | undefined
    for (const r of batch) {
      try {
        const infoHash =
          previous !== undefined && equalBytes(previous.info, r.info) ? previous.infoHash : infoHashOf(r.info)
        previous = { info: r.info, infoHash }
        if (pool)
          generateEphemeralAsync(kem.curve).then(
            (ephemeral) => r.resolve({ ephemeral, infoHash }),
            (e: unknown) => r.reject(asCryptoError(e)),
          )
        else r.resolve({ ephemeral: generateEphemeral(kem.curve), infoHash })
      } catch (e) {
        r.reject(asCryptoError(e))
      }
    }
  }

  function decap(enc: Uint8Array, skR: NodePrivateKey): Uint8Array {
    const dh = dhOrThrow(skR.key, importPublic(kem.curve, enc))
    return sharedSecret(dh, enc, skR.publicKey)
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
      const pkR = ownPublic(publicKey)
      const { ephemeral, infoHash } = await prepareSeal(info)
      const dh = dhOrThrow(ephemeral.privateKey, pkR.key)
      const shared = sharedSecret(dh, ephemeral.publicKey, pkR.raw)
      const { key, nonce } = keyAndNonce(shared, infoHash)
      return { ct: seal(aead, key, nonce, aad ?? empty, plaintext), enc: ephemeral.publicKey }
    },
    async open(privateKey, kemOutput, ciphertext, info, aad) {
      const { key, nonce } = keyAndNonce(
        rethrow(() => decap(kemOutput, ownPrivate(privateKey))),
        infoHashOf(info),
      )
      return open(aead, key, nonce, aad ?? empty, ciphertext)
    },
    async exportSecret(publicKey, exporterContext, length, info) {
      const { shared, enc } = encap(ownPublic(publicKey))
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
      const { privateKey, publicKey } = generateRaw(kem.curve)
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
  ephemeral: { privateKey: KeyObject; publicKey: Uint8Array }
  infoHash: Uint8Array
}

interface SealRequest {
  info: Uint8Array
  resolve: (p: PreparedSeal) => void
  reject: (e: unknown) => void
}

/** Batches of at least this many seals have their ephemeral key pairs generated on libuv's thread pool. */
const poolBatch = 8

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

/** X25519/X448 via OpenSSL, which rejects an all-zero shared secret as RFC 9180 §7.1.4 requires. */
function dhOrThrow(privateKey: KeyObject, publicKey: KeyObject): Uint8Array {
  return toBytes(rethrow(() => diffieHellman({ privateKey, publicKey })))
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
