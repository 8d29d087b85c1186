/**
 * Authentication service: registration of an account with its first device, proof of possession (trust on first use
 * of a handle), one-time login challenges naming a device, and bearer tokens (stored only as their SHA-256) that act
 * as that one device. Devices beyond the first: services/devices.ts.
 */
import { createHash, createPublicKey, randomBytes, randomUUID, verify } from "node:crypto"
import { fromBase64Url, mlsClientId, toBase64Url } from "../../rpc-schema/common.js"
import { AppError } from "../../rpc-schema/errors.js"
import {
  loginMessage,
  registrationMessage,
  type ChallengeBody,
  type ChallengeResult,
  type DeviceIdentity,
  type GetUserResult,
  type LoginBody,
  type LoginResult,
  type RegisterBody,
  type RegisterResult,
} from "../../rpc-schema/server/http/auth.js"
import type { Clock } from "../clock.js"
import type { DeviceRef, NewDevice, ServerStore, StoredAccount } from "../store/types.js"
import { RateLimiter, rateLimited, takeAll, type Limit } from "./rateLimiter.js"

/** Verifies an Ed25519 signature over a UTF-8 message with a raw 32-byte public key. */
export function verifyEd25519(publicKey: Uint8Array, message: string, signature: Uint8Array): boolean {
  try {
    const key = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: toBase64Url(publicKey) }, format: "jwk" })
    return verify(null, Buffer.from(message, "utf8"), key, signature)
  } catch {
    return false
  }
}

const tokenPattern = /^Bearer ([A-Za-z0-9_-]{43})$/
const hashToken = (token: string) => createHash("sha256").update(token).digest()

/**
 * A new device's ids: 63 random bits as 16 hex digits, the top bit set so the first digit is never 0 (clients such
 * as core-crypto render the device id in a client id without leading zeros; INTEROP-NOTES.md), and its client id
 * under `domain`.
 */
export function newDevice(userId: string, loginKey: Uint8Array, domain: string): NewDevice {
  const bytes = randomBytes(8)
  bytes[0]! |= 0x80
  const deviceId = bytes.toString("hex")
  return { deviceId, clientId: mlsClientId(userId, deviceId, domain), loginKey }
}

/** The account `ref` (handle or user id) names, or unknown_user. */
export async function accountOf(store: ServerStore, ref: string): Promise<StoredAccount> {
  const account = await store.account(ref)
  if (!account) throw new AppError("unknown_user", `no user "${ref}"`)
  return account
}

/** An authenticated bearer token: a session of one device. */
export interface Session {
  device: DeviceRef
  /** The token's SHA-256, base64url: names the session without keeping the token. */
  id: string
  expiresAt: number
}

/** Told when a session or a whole device is revoked, so that what was opened with it (stream connections) ends at once. */
export interface SessionListener {
  sessionRevoked(session: Session): void
  deviceRemoved(deviceId: string): void
}

/** Limits on the routes anyone may call without a session, so that nobody can grow the database at will. */
export interface AuthLimits {
  /** Registrations per client address. */
  registerPerIp: Limit
  /** Login challenges per client address. */
  challengePerIp: Limit
  /** Unanswered, unexpired challenges one user may have at once. */
  maxOutstandingChallenges: number
}

export class AuthService {
  private readonly registerLimiter: RateLimiter
  private readonly challengeLimiter: RateLimiter

  constructor(
    private readonly store: ServerStore,
    /** The domain of new devices' client ids (`--domain`). */
    private readonly domain: string,
    private readonly clock: Clock,
    private readonly ttl: { session: number; challenge: number },
    private readonly listener: SessionListener,
    private readonly limits: AuthLimits,
  ) {
    this.registerLimiter = new RateLimiter("register-ip", limits.registerPerIp)
    this.challengeLimiter = new RateLimiter("challenge-ip", limits.challengePerIp)
  }

  /** `ip` is the client's address: registrations per address are limited. */
  async register(body: RegisterBody, ip: string): Promise<RegisterResult> {
    await takeAll(this.store, this.clock, [
      { limiter: this.registerLimiter, key: ip, what: "too many registrations from this address" },
    ])
    const key = fromBase64Url(body.signatureKey)
    if (!verifyEd25519(key, registrationMessage(body.username, body.signatureKey), fromBase64Url(body.proof))) {
      throw new AppError("bad_signature", "the proof of possession does not verify with that key")
    }
    const userId = randomUUID()
    const device = newDevice(userId, key, this.domain)
    await this.store.createAccount(userId, body.username, device, this.clock.now())
    const identity = { userId, handle: body.username, deviceId: device.deviceId, clientId: device.clientId }
    return { ...identity, username: body.username, signatureKey: body.signatureKey }
  }

  /**
   * A one-time login challenge for a device (by default the account's oldest active one); limited per client address,
   * and to a few outstanding ones per device.
   */
  async challenge(body: ChallengeBody, ip: string): Promise<ChallengeResult> {
    await takeAll(this.store, this.clock, [
      { limiter: this.challengeLimiter, key: ip, what: "too many login challenges from this address" },
    ])
    const account = await accountOf(this.store, body.username)
    const device =
      body.deviceId === undefined
        ? account.devices.find((d) => d.removedAt === null)
        : account.devices.find((d) => d.deviceId === body.deviceId)
    if (!device) throw new AppError("unknown_device", `${account.handle} has no device ${body.deviceId}`)
    if (device.removedAt !== null) throw new AppError("device_removed", `device ${device.deviceId} was removed`)
    const id = randomBytes(16).toString("base64url")
    const nonce = randomBytes(32)
    const now = this.clock.now()
    const expiresAt = now + this.ttl.challenge
    const max = this.limits.maxOutstandingChallenges
    const full = await this.store.createChallenge(id, device.deviceId, nonce, expiresAt, now, max)
    if (full !== undefined) {
      throw rateLimited(full - now, `device ${device.deviceId} of ${account.handle} has ${max} unanswered challenges`)
    }
    return { challengeId: id, nonce: toBase64Url(nonce), expiresAt, handle: account.handle, deviceId: device.deviceId }
  }

  async login(body: LoginBody): Promise<LoginResult> {
    const now = this.clock.now()
    // Consumed before checking the signature: a challenge is answered once, right or wrong.
    const challenge = await this.store.consumeChallenge(body.challengeId, now)
    if (!challenge) throw new AppError("invalid_challenge", "challenge unknown, already used or expired")
    // Removing a device deletes its challenges, so a device found here is active unless removed in between.
    const device = await this.store.device(challenge.deviceId)
    if (!device || device.removedAt !== null) throw new AppError("device_removed", "the device was removed")
    const message = loginMessage(device.handle, toBase64Url(challenge.nonce))
    if (!verifyEd25519(device.loginKey, message, fromBase64Url(body.signature))) {
      throw new AppError("bad_signature", "the challenge signature does not verify")
    }
    const token = randomBytes(32).toString("base64url")
    const expiresAt = now + this.ttl.session
    await this.store.createSession(hashToken(token), device.deviceId, expiresAt)
    const identity: DeviceIdentity = {
      userId: device.userId,
      handle: device.handle,
      deviceId: device.deviceId,
      clientId: device.clientId,
    }
    return { ...identity, token, username: device.handle, expiresAt }
  }

  /** The session an `Authorization` header carries; unauthenticated for anything else. */
  async authenticate(header: string | undefined): Promise<Session> {
    const token = header && tokenPattern.exec(header)?.[1]
    if (!token) throw new AppError("unauthenticated", "a bearer token is required")
    const hash = hashToken(token)
    const row = await this.store.session(hash, this.clock.now())
    if (!row) throw new AppError("unauthenticated", "the token is unknown, expired or revoked")
    return { device: row.device, id: toBase64Url(hash), expiresAt: row.expiresAt }
  }

  /** Whether the session, authenticated earlier, has since been revoked (an expired one is not: it expired). */
  async revoked(session: Session): Promise<boolean> {
    const now = this.clock.now()
    return now < session.expiresAt && !(await this.store.session(fromBase64Url(session.id), now))
  }

  /** Revokes the session before its expiry. */
  async logout(session: Session): Promise<void> {
    await this.store.deleteSession(fromBase64Url(session.id))
    this.listener.sessionRevoked(session)
  }

  /** The directory entry of an account: its devices with their client ids, login keys and bound MLS keys. */
  async lookup(ref: string): Promise<GetUserResult> {
    const account = await accountOf(this.store, ref)
    const devices = account.devices.map((d) => ({
      deviceId: d.deviceId,
      clientId: d.clientId,
      loginKey: toBase64Url(d.loginKey),
      mlsKey: d.mlsKey && toBase64Url(d.mlsKey),
      createdAt: d.createdAt,
      removedAt: d.removedAt,
    }))
    // Before devices there was one key per user; clients from then read it as `signatureKey`.
    const first = account.devices.find((d) => d.removedAt === null) ?? account.devices[0]!
    const signatureKey = toBase64Url(first.mlsKey ?? first.loginKey)
    return { userId: account.userId, handle: account.handle, devices, username: account.handle, signatureKey }
  }
}
