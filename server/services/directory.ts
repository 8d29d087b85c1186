/**
 * Key directory (DESIGN §2): validated uploads, the last-resort key, reserve with a TTL, spend by
 * the reservation holder, withdraw, status, garbage collection. Cryptographic checks run before
 * the store is touched; each state change is one store transaction; events follow the commit.
 */
import { randomBytes } from "node:crypto"
import { ciphersuites } from "ts-mls"
import { fromBase64Url, parseMlsClientId, toBase64Url } from "../../rpc-schema/common.js"
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
import type { DeviceRef, ServerStore, StoreUploadOutcome, StoredDevice } from "../store/types.js"
import { accountOf } from "./auth.js"
import type { DirectoryEvents } from "./events.js"
import { keyPackageRejections } from "../../rpc-schema/errors.js"
import { RateLimiter, takeAll } from "./rateLimiter.js"
import { validateKeyPackage, type Uploader, type Validation } from "./keyPackageValidation.js"

const expiringSoonMs = 2 * 24 * 3600_000
const defaultCipherSuite = ciphersuites.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519

export function healthOf(available: number, lowWatermark: number): PoolHealth {
  if (available === 0) return "exhausted"
  if (available <= 2) return "critical"
  return available < lowWatermark ? "low" : "good"
}

type ReserveLimits = "reserveBurst" | "reservePerMinute" | "reserveTargetBurst" | "reserveTargetPerMinute"
type MoreReserveLimits = "reserveStrangerBurst" | "reserveStrangerPerMinute" | "reserveIpBurst" | "reserveIpPerMinute"

export class DirectoryService {
  /** Reservation budgets (drain resistance): per requester/target pair, per target, strangers' share, per address. */
  private readonly limits

  constructor(
    private readonly store: ServerStore,
    private readonly clock: Clock,
    private readonly events: DirectoryEvents,
    private readonly config: Pick<ServerConfig, "reservationTtlMs" | "lowWatermark" | "retentionMs"> &
      Pick<ServerConfig, ReserveLimits | MoreReserveLimits>,
  ) {
    const bucket = (name: string, burst: number, perMinute: number) => new RateLimiter(name, { burst, perMinute })
    this.limits = {
      pair: bucket("reserve-pair", config.reserveBurst, config.reservePerMinute),
      target: bucket("reserve-target", config.reserveTargetBurst, config.reserveTargetPerMinute),
      stranger: bucket("reserve-stranger", config.reserveStrangerBurst, config.reserveStrangerPerMinute),
      ip: bucket("reserve-ip", config.reserveIpBurst, config.reserveIpPerMinute),
    }
  }

  /**
   * Takes `n` tokens (one per key) of every budget this reservation counts against, or none. Budgets are per account:
   * group-mates of the target draw on the target's budget; strangers draw on it too but also on their small share,
   * so however many strangers ask, the rest of the budget stays for the people the target talks to.
   */
  private async budget(requester: DeviceRef, target: { userId: string; handle: string }, ip: string, n: number) {
    const mate = requester.userId === target.userId || (await this.store.sharesGroup(requester.userId, target.userId))
    const { pair, target: perTarget, stranger, ip: perIp } = this.limits
    const name = target.handle
    await takeAll(
      this.store,
      this.clock,
      [
        { limiter: perIp, key: ip, what: "too many reservations from this address" },
        {
          limiter: pair,
          key: `${requester.userId}:${target.userId}`,
          what: `too many reservations of ${name}'s keys by you`,
        },
        ...(mate
          ? []
          : [
              {
                limiter: stranger,
                key: target.userId,
                what: `too many reservations of ${name}'s keys by non-group-mates`,
              },
            ]),
        { limiter: perTarget, key: target.userId, what: `too many reservations of ${name}'s keys` },
      ],
      n,
    )
  }

  /** The uploading device: its client id, whether it may still use the bare handle, its bound key. */
  private async uploader(device: DeviceRef): Promise<Uploader> {
    const account = await accountOf(this.store, device.userId)
    const active = account.devices.filter((d) => d.removedAt === null)
    const self = active.find((d) => d.deviceId === device.deviceId)
    if (!self) throw new AppError("device_removed", "the device was removed")
    // Daemons from before devices name themselves by the bare handle: allowed for the account's oldest device only.
    const legacyHandle = active[0]!.deviceId === device.deviceId ? device.handle : undefined
    return { clientId: device.clientId, legacyHandle, mlsKey: self.mlsKey }
  }

  private async validateAll(device: DeviceRef, encoded: string[]): Promise<Validation[]> {
    const uploader = await this.uploader(device)
    const now = this.clock.now()
    return Promise.all(encoded.map((e) => validateKeyPackage(fromBase64Url(e), uploader, now, suiteImpl)))
  }

  async upload(device: DeviceRef, encoded: string[]): Promise<UploadItemResult[]> {
    const checks = await this.validateAll(device, encoded)
    const valid = checks.flatMap((c) => (c.ok ? [c.kp] : []))
    const stored = await this.store.addKeyPackages(device.deviceId, valid, keyPackageCap, this.clock.now())
    let next = 0
    return checks.map((c, index) => (c.ok ? toItem(index, stored[next++]!) : { index, status: "rejected", ...pick(c) }))
  }

  async setLastResort(device: DeviceRef, encoded: string): Promise<UploadItemResult> {
    const [check] = await this.validateAll(device, [encoded])
    if (!check!.ok) return { index: 0, status: "rejected", ...pick(check!) }
    return toItem(0, await this.store.setLastResort(device.deviceId, check!.kp, this.clock.now()))
  }

  /** The active devices `target` names: every one of an account (handle or user id), or the one of a client id. */
  private async targets(target: string) {
    const client = parseMlsClientId(target)
    const account = await accountOf(this.store, client ? client.userId : target)
    const active = account.devices.filter((d) => d.removedAt === null)
    if (!client) return { account, devices: active }
    const device = active.find((d) => d.clientId === target)
    if (!device) throw new AppError("unknown_device", `no active device ${target}`)
    return { account, devices: [device] }
  }

  /** `ip` is the client's address (per-address budget). */
  async reserve(
    requester: DeviceRef,
    target: string,
    ip: string,
    cipherSuite: number = defaultCipherSuite,
  ): Promise<ReserveResult> {
    const { account, devices } = await this.targets(target)
    await this.budget(requester, account, ip, devices.length)
    const now = this.clock.now()
    const newId = () => randomBytes(16).toString("base64url")
    const expiresAt = now + this.config.reservationTtlMs
    const owners = devices.map((d) => d.deviceId)
    const { reserved, missing } = await this.store.reserve(
      owners,
      cipherSuite,
      requester,
      newId,
      now,
      expiresAt,
      this.config.lowWatermark,
    )
    const byId = new Map<string, StoredDevice>(devices.map((d) => [d.deviceId, d]))
    const keyPackages = reserved.map((r) => {
      const event = { owner: r.owner, ref: r.ref, by: requester.deviceId, lastResort: r.lastResort }
      this.events.emit("reserved", { ...event, remainingAvailable: r.remainingAvailable })
      if (r.remainingAvailable < this.config.lowWatermark) {
        this.events.emit("poolLow", { owner: r.owner, available: r.remainingAvailable })
      }
      return {
        deviceId: r.owner,
        clientId: byId.get(r.owner)!.clientId,
        ref: r.ref,
        keyPackage: toBase64Url(r.data),
        reservationId: r.reservationId,
        expiresAt: r.expiresAt,
        lastResort: r.lastResort,
      }
    })
    const first = keyPackages[0]!
    return {
      userId: account.userId,
      handle: account.handle,
      keyPackages,
      missing: missing.map((id) => ({ deviceId: id, clientId: byId.get(id)!.clientId })),
      ref: first.ref,
      keyPackage: first.keyPackage,
      reservationId: first.reservationId,
      expiresAt: first.expiresAt,
      lastResort: first.lastResort,
    }
  }

  async spend(requester: DeviceRef, ref: string, reservationId: string): Promise<SpendResult> {
    const s = await this.store.spend(ref, reservationId, requester, this.clock.now())
    this.events.emit("spent", { owner: s.owner, ref, by: requester.deviceId, lastResort: s.lastResort })
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
    const report = await this.store.collectGarbage(this.clock.now(), this.config.retentionMs)
    for (const l of report.lapsedReservations)
      this.events.emit("released", { owner: l.owner, ref: l.ref, by: l.requester })
    return report
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
