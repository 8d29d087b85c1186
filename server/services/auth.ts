/**
 * Authentication service: registration with proof of possession (trust on first use of a name),
 * one-time login challenges, and bearer tokens stored only as their SHA-256.
 */
import { createHash, createPublicKey, randomBytes, verify } from "node:crypto"
import { fromBase64Url, toBase64Url } from "../../rpc-schema/common.js"
import { AppError } from "../../rpc-schema/errors.js"
import {
  loginMessage,
  registrationMessage,
  type ChallengeResult,
  type LoginBody,
  type LoginResult,
  type RegisterBody,
  type RegisterResult,
} from "../../rpc-schema/server/http/auth.js"
import type { Clock } from "../clock.js"
import type { ServerStore } from "../store/types.js"
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

/** An authenticated bearer token. */
export interface Session {
  user: string
  /** The token's SHA-256, base64url: names the session without keeping the token. */
  id: string
  expiresAt: number
}

/** Told when a session is revoked, so that what was opened with it (stream connections) ends at once. */
export interface SessionListener {
  sessionRevoked(session: Session): void
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
    private readonly clock: Clock,
    private readonly ttl: { session: number; challenge: number },
    private readonly listener: SessionListener,
    private readonly limits: AuthLimits,
  ) {
    this.registerLimiter = new RateLimiter(clock, limits.registerPerIp)
    this.challengeLimiter = new RateLimiter(clock, limits.challengePerIp)
  }

  /** `ip` is the client's address: registrations per address are limited. */
  async register(body: RegisterBody, ip: string): Promise<RegisterResult> {
    takeAll([{ limiter: this.registerLimiter, key: ip, what: "too many registrations from this address" }])
    const key = fromBase64Url(body.signatureKey)
    if (!verifyEd25519(key, registrationMessage(body.username, body.signatureKey), fromBase64Url(body.proof))) {
      throw new AppError("bad_signature", "the proof of possession does not verify with that key")
    }
    await this.store.createUser(body.username, key, this.clock.now())
    return { username: body.username, signatureKey: body.signatureKey }
  }

  /** A one-time login challenge; limited per client address, and to a few outstanding ones per user. */
  async challenge(username: string, ip: string): Promise<ChallengeResult> {
    takeAll([{ limiter: this.challengeLimiter, key: ip, what: "too many login challenges from this address" }])
    if (!(await this.store.userKey(username))) throw new AppError("unknown_user", `no user "${username}"`)
    const id = randomBytes(16).toString("base64url")
    const nonce = randomBytes(32)
    const now = this.clock.now()
    const expiresAt = now + this.ttl.challenge
    const full = await this.store.createChallenge(
      id,
      username,
      nonce,
      expiresAt,
      now,
      this.limits.maxOutstandingChallenges,
    )
    if (full !== undefined) {
      throw rateLimited(full - now, `${username} has ${this.limits.maxOutstandingChallenges} unanswered challenges`)
    }
    return { challengeId: id, nonce: toBase64Url(nonce), expiresAt }
  }

  /** Forgets rate-limit buckets that have refilled (the GC timer calls it). */
  pruneLimits(): void {
    this.registerLimiter.prune()
    this.challengeLimiter.prune()
  }

  async login(body: LoginBody): Promise<LoginResult> {
    const now = this.clock.now()
    // Consumed before checking the signature: a challenge is answered once, right or wrong.
    const challenge = await this.store.consumeChallenge(body.challengeId, now)
    if (!challenge) throw new AppError("invalid_challenge", "challenge unknown, already used or expired")
    const key = await this.store.userKey(challenge.username)
    const message = loginMessage(challenge.username, toBase64Url(challenge.nonce))
    if (!key || !verifyEd25519(key, message, fromBase64Url(body.signature))) {
      throw new AppError("bad_signature", "the challenge signature does not verify")
    }
    const token = randomBytes(32).toString("base64url")
    const expiresAt = now + this.ttl.session
    await this.store.createSession(hashToken(token), challenge.username, expiresAt)
    return { token, username: challenge.username, expiresAt }
  }

  /** The session an `Authorization` header carries; unauthenticated for anything else. */
  async authenticate(header: string | undefined): Promise<Session> {
    const token = header && tokenPattern.exec(header)?.[1]
    if (!token) throw new AppError("unauthenticated", "a bearer token is required")
    const hash = hashToken(token)
    const row = await this.store.session(hash, this.clock.now())
    if (!row) throw new AppError("unauthenticated", "the token is unknown, expired or revoked")
    return { user: row.username, id: toBase64Url(hash), expiresAt: row.expiresAt }
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

  async signatureKey(username: string): Promise<RegisterResult> {
    const key = await this.store.userKey(username)
    if (!key) throw new AppError("unknown_user", `no user "${username}"`)
    return { username, signatureKey: toBase64Url(key) }
  }
}
