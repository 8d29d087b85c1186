/** `identity.*`: the profile's user identity (Ed25519 signature key and basic credential). */
import { Type, type Static } from "@sinclair/typebox"
import { Base64Url, NameInput, Strict, TimestampMs, Username } from "../common.js"
import { method } from "./method.js"

export const IdentityResult = Type.Object({
  registered: Type.Boolean(),
  username: Type.Union([Username, Type.Null()]),
  /** The server this identity is registered with. */
  server: Type.Union([Type.String(), Type.Null()]),
  /** The Ed25519 public key that signs this user's credentials and KeyPackages, base64url. */
  signatureKey: Type.Union([Base64Url({ minLength: 43, maxLength: 43 }), Type.Null()]),
  registeredAt: Type.Union([TimestampMs, Type.Null()]),
})
export type IdentityResult = Static<typeof IdentityResult>

export const IdentityGetParams = Strict({})
export type IdentityGetParams = Static<typeof IdentityGetParams>

/** Who am I: the profile's identity, or `registered: false`. */
export const get = method({
  name: "identity.get",
  summary: "the profile's identity",
  params: IdentityGetParams,
  result: IdentityResult,
  errors: [],
})

/** An http(s) URL with no path beyond "/". */
export const ServerUrl = Type.String({ pattern: "^https?://[^/?#\\s]+/?$", description: "server base URL" })

export const IdentityRegisterParams = Strict({
  /** The user name to register; upper-case letters are folded to lower case ("Alice" registers "alice"). */
  username: NameInput,
  /** The server to register with; defaults to the daemon's `--server`. */
  server: Type.Optional(ServerUrl),
})
export type IdentityRegisterParams = Static<typeof IdentityRegisterParams>

/**
 * First-run registration: makes the Ed25519 key pair, registers the name with a proof of possession, logs in and
 * starts pool maintenance. Retrying after a crash or an unreachable server reuses the same key, so a name
 * registered just before a crash is not lost.
 */
export const register = method({
  name: "identity.register",
  summary: "first-run registration with a server",
  params: IdentityRegisterParams,
  result: IdentityResult,
  errors: ["already_registered", "username_taken", "server_unreachable", "invalid_request"],
})
