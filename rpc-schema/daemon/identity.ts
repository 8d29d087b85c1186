/** `identity.*`: the profile's user identity (Ed25519 signature key and basic credential). */
import { Type, type Static } from "@sinclair/typebox"
import { Base64Url, described, NameInput, Strict, TimestampMs, Username } from "../common.js"
import { method } from "./method.js"

export const IdentityResult = Type.Object({
  registered: described(Type.Boolean(), "whether the profile has a registered identity"),
  username: described(Type.Union([Username, Type.Null()]), "the registered user name; null before registration"),
  server: described(Type.Union([Type.String(), Type.Null()]), "The server this identity is registered with."),
  signatureKey: described(
    Type.Union([Base64Url({ minLength: 43, maxLength: 43 }), Type.Null()]),
    "The Ed25519 public key that signs this user's credentials and KeyPackages, base64url.",
  ),
  registeredAt: described(Type.Union([TimestampMs, Type.Null()]), "when registration succeeded; null before"),
})
export type IdentityResult = Static<typeof IdentityResult>

export const IdentityGetParams = Strict({})
export type IdentityGetParams = Static<typeof IdentityGetParams>

export const get = method({
  name: "identity.get",
  summary: "the profile's identity",
  description: "Who am I: the profile's identity, or `registered: false`.",
  params: IdentityGetParams,
  result: IdentityResult,
  errors: [],
})

/** An http(s) URL with no path beyond "/". */
export const ServerUrl = Type.String({ pattern: "^https?://[^/?#\\s]+/?$", description: "server base URL" })

export const IdentityRegisterParams = Strict({
  username: described(
    NameInput,
    'The user name to register; upper-case letters are folded to lower case ("Alice" registers "alice").',
  ),
  server: described(Type.Optional(ServerUrl), "The server to register with; defaults to the daemon's `--server`."),
})
export type IdentityRegisterParams = Static<typeof IdentityRegisterParams>

export const register = method({
  name: "identity.register",
  summary: "first-run registration with a server",
  description:
    "First-run registration: makes the Ed25519 key pair, registers the name with a proof of possession, logs in and starts pool maintenance. Retrying after a crash or an unreachable server reuses the same key, so a name registered just before a crash is not lost.",
  params: IdentityRegisterParams,
  result: IdentityResult,
  errors: ["already_registered", "username_taken", "server_unreachable", "invalid_request"],
})
