/**
 * Authentication service: registration (trust on first use of a name) and challenge/response
 * sessions. Signatures are Ed25519 over the UTF-8 strings built by `registrationMessage` and
 * `loginMessage`, so that a signature made for one purpose is never valid for another.
 */
import { Type, type Static } from "@sinclair/typebox"
import { Base64Url, Strict, TimestampMs, Username } from "../../common.js"
import { route } from "./route.js"

/** What a proof of possession signs at registration. */
export const registrationMessage = (username: string, signatureKeyB64: string) =>
  `mls-chat/v1 register\n${username}\n${signatureKeyB64}`

/** What a client signs to answer a login challenge. */
export const loginMessage = (username: string, nonceB64: string) => `mls-chat/v1 login\n${username}\n${nonceB64}`

/** A raw 32-byte Ed25519 public key, base64url. */
export const SignatureKey = Base64Url({ minLength: 43, maxLength: 43, description: "Ed25519 public key, base64url" })
/** A 64-byte Ed25519 signature, base64url. */
export const Ed25519Signature = Base64Url({ minLength: 86, maxLength: 86, description: "Ed25519 signature" })

export const RegisterBody = Strict({
  username: Username,
  /** The Ed25519 signature key that the user's credentials will carry. */
  signatureKey: SignatureKey,
  /** Signature of `registrationMessage(username, signatureKey)` with that key. */
  proof: Ed25519Signature,
})
export type RegisterBody = Static<typeof RegisterBody>
export const RegisterResult = Type.Object({ username: Username, signatureKey: SignatureKey })
export type RegisterResult = Static<typeof RegisterResult>

export const register = route({
  method: "POST",
  path: "/v1/users",
  auth: false,
  params: undefined,
  body: RegisterBody,
  status: 201,
  response: RegisterResult,
  errors: ["username_taken", "bad_signature", "rate_limited"],
})

export const ChallengeBody = Strict({ username: Username })
export type ChallengeBody = Static<typeof ChallengeBody>
export const ChallengeResult = Type.Object({
  challengeId: Type.String(),
  /** Random nonce to sign with `loginMessage`. */
  nonce: Base64Url(),
  expiresAt: TimestampMs,
})
export type ChallengeResult = Static<typeof ChallengeResult>

export const challenge = route({
  method: "POST",
  path: "/v1/sessions/challenge",
  auth: false,
  params: undefined,
  body: ChallengeBody,
  status: 201,
  response: ChallengeResult,
  errors: ["unknown_user", "rate_limited"],
})

export const LoginBody = Strict({
  challengeId: Type.String({ maxLength: 64 }),
  /** Signature of `loginMessage(username, nonce)` with the registered key. */
  signature: Ed25519Signature,
})
export type LoginBody = Static<typeof LoginBody>
export const LoginResult = Type.Object({
  /** Bearer token for `Authorization: Bearer …`; the server stores only its hash. */
  token: Type.String(),
  username: Username,
  expiresAt: TimestampMs,
})
export type LoginResult = Static<typeof LoginResult>

export const login = route({
  method: "POST",
  path: "/v1/sessions",
  auth: false,
  params: undefined,
  body: LoginBody,
  status: 201,
  response: LoginResult,
  errors: ["invalid_challenge", "bad_signature"],
})

export const LogoutResult = Type.Object({})
export type LogoutResult = Static<typeof LogoutResult>

/**
 * Revokes the bearer token of this request at once (its expiry would otherwise end it); the stream connections opened
 * with it close with `closeCodes.sessionEnded`. The user's other tokens stay valid.
 */
export const logout = route({
  method: "DELETE",
  path: "/v1/sessions",
  auth: true,
  params: undefined,
  body: undefined,
  status: 200,
  response: LogoutResult,
  errors: [],
})

export const UserParams = Strict({ username: Username })
export type UserParams = Static<typeof UserParams>

/** Directory lookup: a user's registered signature key (the authentication service of DESIGN §3). */
export const getUser = route({
  method: "GET",
  path: "/v1/users/:username",
  auth: true,
  params: UserParams,
  body: undefined,
  status: 200,
  response: RegisterResult,
  errors: ["unknown_user"],
})

export const HealthResult = Type.Object({ status: Type.Literal("ok"), version: Type.String() })
export const health = route({
  method: "GET",
  path: "/v1/health",
  auth: false,
  params: undefined,
  body: undefined,
  status: 200,
  response: HealthResult,
  errors: [],
})
