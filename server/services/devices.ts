/**
 * Devices of an account beyond the first (rpc-schema/server/http/devices.ts): one-time link codes, redeeming one,
 * the direct add by an authenticated device, and removal, which revokes exactly that device (its sessions, streams and
 * keys) and nothing else. The account's other devices are told of both through their inboxes (`deviceAdded`,
 * `deviceRemoved`), so that they add the new device to, or remove the old one from, the account's groups.
 */
import { createHash, randomBytes } from "node:crypto"
import { fromBase64Url } from "../../rpc-schema/common.js"
import { AppError } from "../../rpc-schema/errors.js"
import type { DeviceIdentity } from "../../rpc-schema/server/http/auth.js"
import {
  addDeviceMessage,
  linkCodeTtlMs,
  linkMessage,
  type AddDeviceBody,
  type LinkCodeResult,
  type LinkDeviceBody,
  type RemoveDeviceResult,
} from "../../rpc-schema/server/http/devices.js"
import type { Clock } from "../clock.js"
import type { DeviceRef, NewDevice, ServerStore } from "../store/types.js"
import { newDevice, verifyEd25519, type SessionListener } from "./auth.js"

/** What is told of device changes after their commit: the stream hub. */
export interface DeviceListener extends SessionListener {
  /** The inbox of device `deviceId` has new items. */
  inbox(deviceId: string): void
}
import { RateLimiter, rateLimited, takeAll, type Limit } from "./rateLimiter.js"

/** Unredeemed, unexpired link codes one account may hold at once. */
const maxOpenLinkCodes = 8
/** Crockford's base32 alphabet (no I, L, O, U): what a person can read off one screen and type on another. */
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

/** A fresh code: 80 random bits as 16 base32 characters in groups of four. */
function newLinkCode(): string {
  const bytes = randomBytes(10)
  let bits = 0n
  for (const b of bytes) bits = (bits << 8n) | BigInt(b)
  let text = ""
  for (let i = 0; i < 16; i++) text += crockford[Number((bits >> BigInt(75 - 5 * i)) & 31n)]
  return text.match(/.{4}/g)!.join("-")
}

const hashCode = (code: string) => createHash("sha256").update(code).digest()

const identityOf = (userId: string, handle: string, d: NewDevice): DeviceIdentity => ({
  userId,
  handle,
  deviceId: d.deviceId,
  clientId: d.clientId,
})

export class DeviceService {
  private readonly attemptsPerIp: RateLimiter

  constructor(
    private readonly store: ServerStore,
    /** The domain of new devices' client ids (`--domain`). */
    private readonly domain: string,
    private readonly clock: Clock,
    private readonly listener: DeviceListener,
    /** Redemption attempts per client address (a code is a secret worth guessing): the login-challenge budget. */
    attemptsPerIp: Limit,
  ) {
    this.attemptsPerIp = new RateLimiter("link-ip", attemptsPerIp)
  }

  async createLinkCode(by: DeviceRef): Promise<LinkCodeResult> {
    const code = newLinkCode()
    const now = this.clock.now()
    const expiresAt = now + linkCodeTtlMs
    const full = await this.store.createLinkCode(
      hashCode(code),
      by.userId,
      by.deviceId,
      expiresAt,
      now,
      maxOpenLinkCodes,
    )
    if (full !== undefined) throw rateLimited(full - now, `${by.handle} has ${maxOpenLinkCodes} open link codes`)
    return { code, expiresAt }
  }

  /** `ip` is the client's address: attempts per address are limited. */
  async link(body: LinkDeviceBody, ip: string): Promise<DeviceIdentity> {
    await takeAll(this.store, this.clock, [
      { limiter: this.attemptsPerIp, key: ip, what: "too many device links from this address" },
    ])
    const key = fromBase64Url(body.loginKey)
    // Checked before the code is touched: a proof that does not verify does not use the code up.
    if (!verifyEd25519(key, linkMessage(body.code, body.loginKey), fromBase64Url(body.proof))) {
      throw new AppError("bad_signature", "the proof of possession does not verify with that key")
    }
    // The device's client id names the code's account, known inside the redeeming transaction.
    const device = (userId: string) => newDevice(userId, key, this.domain)
    const r = await this.store.redeemLinkCode(hashCode(body.code), device, this.clock.now())
    for (const d of r.notified) this.listener.inbox(d)
    return identityOf(r.userId, r.handle, r.device)
  }

  async add(by: DeviceRef, body: AddDeviceBody): Promise<DeviceIdentity> {
    const key = fromBase64Url(body.loginKey)
    if (!verifyEd25519(key, addDeviceMessage(by.userId, body.loginKey), fromBase64Url(body.proof))) {
      throw new AppError("bad_signature", "the proof of possession does not verify with that key")
    }
    const device = newDevice(by.userId, key, this.domain)
    const notified = await this.store.addDevice(by.userId, device, by, this.clock.now())
    for (const d of notified) this.listener.inbox(d)
    return identityOf(by.userId, by.handle, device)
  }

  /** Removes a device of the caller's account; its streams end after the commit. */
  async remove(by: DeviceRef, deviceId: string): Promise<RemoveDeviceResult> {
    const r = await this.store.removeDevice(by, deviceId, this.clock.now())
    if (r.changed) this.listener.deviceRemoved(deviceId)
    for (const d of r.notified) this.listener.inbox(d)
    return { deviceId, removedAt: r.removedAt }
  }
}
