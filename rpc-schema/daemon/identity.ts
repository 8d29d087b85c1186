/**
 * `identity.*`: this profile as one device of an account. The account is a user id with a handle (the user name
 * people type); the device has its own id, its client id (`<user-id>:<device-id>@<domain>`, the identity of its MLS
 * credentials), its own login key and its own MLS signature key. A second device is linked with a one-time code: no
 * private key ever leaves a device (daemon/README.md, Devices).
 */
import { Type, type Static } from "@sinclair/typebox"
import {
  Base64Url,
  described,
  DeviceId,
  LinkCode,
  MlsClientId,
  NameInput,
  Strict,
  TimestampMs,
  UserId,
  Username,
} from "../common.js"
import { method } from "./method.js"

const Key = Base64Url({ minLength: 43, maxLength: 43 })

export const IdentityResult = Type.Object({
  registered: described(Type.Boolean(), "whether the profile has a registered identity (registered or linked)"),
  username: described(
    Type.Union([Username, Type.Null()]),
    "the account's handle (the user name people type); null before registration",
  ),
  userId: described(
    Type.Union([UserId, Type.Null()]),
    "the account's user id (UUID); null before registration, and for a profile from before devices until its first login",
  ),
  deviceId: described(Type.Union([DeviceId, Type.Null()]), "this device's id (16 hex digits); null like userId"),
  clientId: described(
    Type.Union([MlsClientId, Type.Null()]),
    "this device's client id `<user-id>:<device-id>@<domain>`, the identity its MLS credentials carry; null like userId",
  ),
  server: described(Type.Union([Type.String(), Type.Null()]), "The server this identity is registered with."),
  signatureKey: described(
    Type.Union([Key, Type.Null()]),
    "This device's Ed25519 MLS signature key: it signs the device's credentials, KeyPackages and messages; base64url.",
  ),
  loginKey: described(
    Type.Union([Key, Type.Null()]),
    "This device's Ed25519 login key (challenge/response with the server), base64url; the MLS key for a profile from before devices.",
  ),
  registeredAt: described(
    Type.Union([TimestampMs, Type.Null()]),
    "when registration (or linking) succeeded; null before",
  ),
})
export type IdentityResult = Static<typeof IdentityResult>

export const IdentityGetParams = Strict({})
export type IdentityGetParams = Static<typeof IdentityGetParams>

export const get = method({
  name: "identity.get",
  summary: "the profile's identity",
  description:
    "Who am I: the account (handle, user id) and this device (device id, client id, keys), or `registered: false`.",
  params: IdentityGetParams,
  result: IdentityResult,
  errors: [],
})

/** An http(s) URL with no path beyond "/". */
export const ServerUrl = Type.String({ pattern: "^https?://[^/?#\\s]+/?$", description: "server base URL" })

export const IdentityRegisterParams = Strict({
  username: described(
    NameInput,
    'The handle to register; upper-case letters are folded to lower case ("Alice" registers "alice").',
  ),
  server: described(Type.Optional(ServerUrl), "The server to register with; defaults to the daemon's `--server`."),
})
export type IdentityRegisterParams = Static<typeof IdentityRegisterParams>

export const register = method({
  name: "identity.register",
  summary: "first-run registration of a new account with a server",
  description:
    "First-run registration: makes this device's login and MLS key pairs, creates the account with this device as its first device (proof of possession), logs in and starts pool maintenance. Retrying after a crash or an unreachable server reuses the same keys, so an account registered just before a crash is not lost. To add this profile to an existing account instead, use identity.link.",
  params: IdentityRegisterParams,
  result: IdentityResult,
  errors: ["already_registered", "username_taken", "server_unreachable", "invalid_request"],
})

export const IdentityLinkCodeParams = Strict({})
export type IdentityLinkCodeParams = Static<typeof IdentityLinkCodeParams>
export const IdentityLinkCodeResult = Type.Object({
  code: described(LinkCode, "the one-time code to give `identity.link` on the new device (single use)"),
  expiresAt: described(TimestampMs, "after this the code is refused"),
})
export type IdentityLinkCodeResult = Static<typeof IdentityLinkCodeResult>

export const linkCode = method({
  name: "identity.linkCode",
  summary: "a one-time code that links a new device to this account",
  description:
    "Asks the server for a one-time link code for this account (10 minutes, single use). Carry it to the new device and run `identity.link` there: the new device makes its own keys, so nothing secret but the code crosses machines. Until the code expires this daemon watches the directory, and once the new device has KeyPackages it adds it to the groups this device is in.",
  params: IdentityLinkCodeParams,
  result: IdentityLinkCodeResult,
  errors: ["not_registered", "rate_limited", "server_unreachable"],
})

export const IdentityLinkParams = Strict({
  code: described(LinkCode, "the code `identity.linkCode` gave on a device of the account"),
  server: described(Type.Optional(ServerUrl), "The account's server; defaults to the daemon's `--server`."),
})
export type IdentityLinkParams = Static<typeof IdentityLinkParams>

export const link = method({
  name: "identity.link",
  summary: "first run: become a new device of an existing account",
  description:
    "First run on a fresh profile: makes this device's own login and MLS key pairs and redeems a link code made by a device of the account (`identity.linkCode`), so this profile becomes a new device of that account (its handle and user id), logs in and starts pool maintenance. The account's other devices add it to their groups once they see it. Not retried: a failed or unreachable attempt leaves the profile unregistered (ask for a new code).",
  params: IdentityLinkParams,
  result: IdentityResult,
  errors: [
    "already_registered",
    "invalid_link_code",
    "server_unreachable",
    "invalid_request",
    "conflict",
    "rate_limited",
  ],
})

export const Device = Type.Object({
  deviceId: described(DeviceId, "the device's id"),
  clientId: described(MlsClientId, "the device's client id, the identity its MLS credentials carry"),
  self: described(Type.Boolean(), "this device"),
  signatureKey: described(
    Type.Union([Key, Type.Null()]),
    "its MLS signature key as the directory lists it (bound by its first KeyPackage upload); null until then",
  ),
  createdAt: described(TimestampMs, "when the device was added to the account"),
  removedAt: described(Type.Union([TimestampMs, Type.Null()]), "when it was removed; null while active"),
})
export type Device = Static<typeof Device>

export const IdentityDevicesParams = Strict({})
export type IdentityDevicesParams = Static<typeof IdentityDevicesParams>
export const IdentityDevicesResult = Type.Object({
  username: described(Username, "the account's handle"),
  userId: described(UserId, "the account's user id"),
  devices: described(Type.Array(Device), "every device of the account, oldest first, removed ones included"),
})
export type IdentityDevicesResult = Static<typeof IdentityDevicesResult>

export const devices = method({
  name: "identity.devices",
  summary: "the devices of this account",
  description:
    "The devices of this account as the server's directory lists them now. Asking also makes this daemon bring its groups in line with the list (add the account's new devices, remove removed ones) when it changed.",
  params: IdentityDevicesParams,
  result: IdentityDevicesResult,
  errors: ["not_registered", "server_unreachable"],
})

export const IdentityRemoveDeviceParams = Strict({
  deviceId: described(DeviceId, "the device of this account to remove (not this one)"),
})
export type IdentityRemoveDeviceParams = Static<typeof IdentityRemoveDeviceParams>
export const IdentityRemoveDeviceResult = Type.Object({
  deviceId: described(DeviceId, "the removed device"),
  removedAt: described(TimestampMs, "when the server removed it"),
})
export type IdentityRemoveDeviceResult = Static<typeof IdentityRemoveDeviceResult>

export const removeDevice = method({
  name: "identity.removeDevice",
  summary: "remove a device of this account (a lost laptop)",
  description:
    "Removes another device of this account on the server: its sessions and streams end, its KeyPackages are deleted, it can never log in again and the directory lists it as removed. Then this daemon commits the removal of its leaves from every group this device is in (in the background; the account's other online devices do the same for theirs). This device itself cannot be removed here (`invalid_request`): remove it from another device.",
  params: IdentityRemoveDeviceParams,
  result: IdentityRemoveDeviceResult,
  errors: ["not_registered", "invalid_request", "unknown_device", "conflict", "server_unreachable"],
})
