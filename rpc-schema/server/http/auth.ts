/**
 * Authentication service: accounts (a user id, a handle, devices), registration (trust on first use of a handle) and
 * challenge/response sessions, each bound to ONE device of the account. Every device has its own Ed25519 login key;
 * no key ever leaves a device (devices.ts links more). Signatures are Ed25519 over the UTF-8 strings built by
 * `registrationMessage`, `loginMessage` and devices.ts's messages, so that a signature made for one purpose is never
 * valid for another.
 */
import { Type, type Static } from "@sinclair/typebox"
import { Base64Url, DeviceId, MlsClientId, Strict, TimestampMs, UserId, UserRef, Username } from "../../common.js"
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
  /** The handle: unique, what people type. */
  username: Username,
  /**
   * The first device's Ed25519 login key. Its MLS signature key is bound separately, by its first accepted
   * KeyPackage upload (it may be the same key, as mlsd's is, or another, as core-crypto's is).
   */
  signatureKey: SignatureKey,
  /** Signature of `registrationMessage(username, signatureKey)` with that key. */
  proof: Ed25519Signature,
})
export type RegisterBody = Static<typeof RegisterBody>

/** A device as the server assigned it: its account and its client id (the identity of its MLS credentials). */
export const DeviceIdentity = Type.Object({
  userId: UserId,
  handle: Username,
  deviceId: DeviceId,
  /** `<userId>:<deviceId>@<domain>`: the exact identity of the device's MLS BasicCredential. */
  clientId: MlsClientId,
})
export type DeviceIdentity = Static<typeof DeviceIdentity>

export const RegisterResult = Type.Composite([
  DeviceIdentity,
  Type.Object({
    /** The handle again (the name of the field before accounts had devices). */
    username: Username,
    /** The device's login key as registered. */
    signatureKey: SignatureKey,
  }),
])
export type RegisterResult = Static<typeof RegisterResult>

/** Creates an account (user id assigned here) with its first device (device id assigned here). */
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

export const ChallengeBody = Strict({
  /** The account: handle or user id. */
  username: UserRef,
  /**
   * The device logging in. Omitted: the account's oldest active device (what a client from before devices means;
   * a client with several devices names its own).
   */
  deviceId: Type.Optional(DeviceId),
})
export type ChallengeBody = Static<typeof ChallengeBody>
export const ChallengeResult = Type.Object({
  challengeId: Type.String(),
  /** Random nonce to sign with `loginMessage(handle, nonce)`. */
  nonce: Base64Url(),
  expiresAt: TimestampMs,
  /** The account's handle, as `loginMessage` takes it. */
  handle: Username,
  /** The device the challenge is for: its login key must sign. */
  deviceId: DeviceId,
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
  errors: ["unknown_user", "unknown_device", "device_removed", "rate_limited"],
})

export const LoginBody = Strict({
  challengeId: Type.String({ maxLength: 64 }),
  /** Signature of `loginMessage(handle, nonce)` with the device's login key. */
  signature: Ed25519Signature,
})
export type LoginBody = Static<typeof LoginBody>
export const LoginResult = Type.Composite([
  DeviceIdentity,
  Type.Object({
    /**
     * Bearer token for `Authorization: Bearer …`, bound to this one device: every device-scoped call (KeyPackages,
     * Commits and messages sent, log, inbox, stream) acts as it. The server stores only its hash.
     */
    token: Type.String(),
    /** The handle (the name of the field before accounts had devices). */
    username: Username,
    expiresAt: TimestampMs,
  }),
])
export type LoginResult = Static<typeof LoginResult>

export const login = route({
  method: "POST",
  path: "/v1/sessions",
  auth: false,
  params: undefined,
  body: LoginBody,
  status: 201,
  response: LoginResult,
  errors: ["invalid_challenge", "bad_signature", "device_removed"],
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

/** An account in a path: its handle or its user id (the parameter kept its old name). */
export const UserParams = Strict({ username: UserRef })
export type UserParams = Static<typeof UserParams>

/** One device of an account in the directory. */
export const DirectoryDevice = Type.Object({
  deviceId: DeviceId,
  clientId: MlsClientId,
  /** The device's Ed25519 login key. */
  loginKey: SignatureKey,
  /** The MLS signature key bound by the device's first accepted KeyPackage upload; null until then. */
  mlsKey: Type.Union([SignatureKey, Type.Null()]),
  createdAt: TimestampMs,
  /** When the device was removed (its leaves should leave every group); null while active. */
  removedAt: Type.Union([TimestampMs, Type.Null()]),
})
export type DirectoryDevice = Static<typeof DirectoryDevice>

export const GetUserResult = Type.Object({
  userId: UserId,
  handle: Username,
  /** Every device of the account, active and removed, oldest first. */
  devices: Type.Array(DirectoryDevice),
  /** The handle (the name of the field before accounts had devices). */
  username: Username,
  /**
   * Before accounts had devices: the one key of the user. Now the MLS key of the oldest active device (its login key
   * while no MLS key is bound); clients of devices read `devices`.
   */
  signatureKey: SignatureKey,
})
export type GetUserResult = Static<typeof GetUserResult>

/**
 * Directory lookup (the authentication service of DESIGN §3): the account named by handle or user id, and its
 * devices with their client ids and bound MLS keys.
 */
export const getUser = route({
  method: "GET",
  path: "/v1/users/:username",
  auth: true,
  params: UserParams,
  body: undefined,
  status: 200,
  response: GetUserResult,
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
