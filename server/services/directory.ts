/**
 * Key directory (DESIGN §2): validated uploads, the last-resort key, reserve with a TTL, spend by
 * the reservation holder, withdraw, status, garbage collection. Cryptographic checks run before
 * the store is touched; each state change is one store transaction; events follow the commit.
 */
import { randomBytes } from "node:crypto"
import { ciphersuites } from "ts-mls"
import { fromBase64Url, toBase64Url } from "../../rpc-schema/common.js"
import { AppError } from "../../rpc-schema/errors.js"
import {
  keyPackageCap,
  refsDigest,
  type PoolHealth,
  type RefsResult,
  type ReserveResult,
  type SpendResult,
  type StatusResult,
  type UploadItemResult,
} from "../../rpc-schema/server/http/keys.js"
import type { Clock } from "../clock.js"
import type { ServerConfig } from "../config.js"
import { suiteImpl } from "../mls.js"
import type { ServerStore, StoreUploadOutcome } from "../store/types.js"
import type { DirectoryEvents } from "./events.js"
import { keyPackageRejections } from "../../rpc-schema/errors.js"
import { RateLimiter } from "./rateLimiter.js"
import { validateKeyPackage, type Validation } from "./keyPackageValidation.js"

const expiringSoonMs = 2 * 24 * 3600_000
const defaultCipherSuite = ciphersuites.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519

export function healthOf(available: number, lowWatermark: number): PoolHealth {
  if (available === 0) return "exhausted"
  if (available <= 2) return "critical"
  return available < lowWatermark ? "low" : "good"
}

export class DirectoryService {
  private readonly reserveLimiter: RateLimiter

  constructor(
    private readonly store: ServerStore,
    private readonly clock: Clock,
    private readonly events: DirectoryEvents,
    private readonly config: Pick<ServerConfig, "reservationTtlMs" | "lowWatermark" | "retentionMs"> &
      Pick<ServerConfig, "reserveBurst" | "reservePerMinute">,
  ) {
    this.reserveLimiter = new RateLimiter(clock, config.reserveBurst, config.reservePerMinute)
  }

  private async uploader(username: string) {
    const signatureKey = await this.store.userKey(username)
    if (!signatureKey) throw new AppError("unknown_user", `no user "${username}"`)
    return { username, signatureKey }
  }

  private async validateAll(username: string, encoded: string[]): Promise<Validation[]> {
    const uploader = await this.uploader(username)
    const now = this.clock.now()
    return Promise.all(encoded.map((e) => validateKeyPackage(fromBase64Url(e), uploader, now, suiteImpl)))
  }

  async upload(username: string, encoded: string[]): Promise<UploadItemResult[]> {
    const checks = await this.validateAll(username, encoded)
    const valid = checks.flatMap((c) => (c.ok ? [c.kp] : []))
    const stored = await this.store.addKeyPackages(username, valid, keyPackageCap, this.clock.now())
    let next = 0
    return checks.map((c, index) => (c.ok ? toItem(index, stored[next++]!) : { index, status: "rejected", ...pick(c) }))
  }

  async setLastResort(username: string, encoded: string): Promise<UploadItemResult> {
    const [check] = await this.validateAll(username, [encoded])
    if (!check!.ok) return { index: 0, status: "rejected", ...pick(check!) }
    return toItem(0, await this.store.setLastResort(username, check!.kp, this.clock.now()))
  }

  async reserve(requester: string, target: string, cipherSuite: number = defaultCipherSuite): Promise<ReserveResult> {
    const waitMs = this.reserveLimiter.take(`${requester}\0${target}`)
    if (waitMs > 0) {
      const retryAfterS = Math.ceil(waitMs / 1000)
      throw new AppError("rate_limited", `too many reservations of ${target}'s keys; retry in ${retryAfterS} s`, {
        retryAfterS,
      })
    }
    const now = this.clock.now()
    const id = randomBytes(16).toString("base64url")
    const expiresAt = now + this.config.reservationTtlMs
    const r = await this.store.reserve(target, cipherSuite, requester, id, now, expiresAt, this.config.lowWatermark)
    const event = { owner: target, ref: r.ref, by: requester, lastResort: r.lastResort }
    this.events.emit("reserved", { ...event, remainingAvailable: r.remainingAvailable })
    if (r.remainingAvailable < this.config.lowWatermark) {
      this.events.emit("poolLow", { owner: target, available: r.remainingAvailable })
    }
    return {
      ref: r.ref,
      keyPackage: toBase64Url(r.data),
      reservationId: r.reservationId,
      expiresAt: r.expiresAt,
      lastResort: r.lastResort,
    }
  }

  async spend(requester: string, ref: string, reservationId: string): Promise<SpendResult> {
    const s = await this.store.spend(ref, reservationId, requester, this.clock.now())
    this.events.emit("spent", { owner: s.owner, ref, by: requester, lastResort: s.lastResort })
    return { ref, spentAt: s.spentAt, lastResort: s.lastResort }
  }

  async withdraw(owner: string, ref: string): Promise<void> {
    await this.store.withdraw(owner, ref, this.clock.now())
  }

  async status(owner: string): Promise<StatusResult> {
    const c = await this.store.keyCounts(owner, this.clock.now(), expiringSoonMs)
    return {
      available: c.available,
      reserved: c.reserved,
      spent: c.spent,
      expired: c.expired,
      expiringSoon: c.expiringSoon,
      lastUpload: c.lastUpload,
      health: healthOf(c.available, this.config.lowWatermark),
      lastResort: c.lastResort,
      digest: refsDigest(c.heldRefs),
    }
  }

  async refs(owner: string): Promise<RefsResult> {
    return this.store.keyRefs(owner, this.clock.now())
  }

  async collectGarbage() {
    this.reserveLimiter.prune()
    return this.store.collectGarbage(this.clock.now(), this.config.retentionMs)
  }
}

function pick(c: Extract<Validation, { ok: false }>) {
  return { reason: c.reason, message: c.message }
}

function toItem(index: number, o: StoreUploadOutcome): UploadItemResult {
  if (o.status === "rejected")
    return { index, status: "rejected", reason: o.reason, message: keyPackageRejections[o.reason] }
  return { index, status: o.status, ref: o.ref, notAfter: o.notAfter }
}
