/**
 * Devices of an account. Every device has its own Ed25519 login key and its own MLS signature key; neither ever
 * leaves the device. A device is added in one of two ways:
 * - linking: an existing device asks for a one-time link code (`createLinkCode`), the user carries it to the new
 *   device, which redeems it with its own fresh login key (`linkDevice`);
 * - direct: an authenticated device adds one (`addDevice`) with the new device's login key and proof, for clients
 *   that hold several devices' keys themselves (a third-party client such as core-crypto registers, logs in, then
 *   adds more).
 * Removing a device (`removeDevice`) revokes exactly that device: its sessions and streams end, its KeyPackages are
 * deleted, it cannot log in again, and the directory shows it removed so the account's other devices (and group
 * members) take its leaves out of their groups.
 */
import { Type, type Static } from "@sinclair/typebox"
import { DeviceId, LinkCode, Strict, TimestampMs } from "../../common.js"
import { DeviceIdentity, Ed25519Signature, SignatureKey } from "./auth.js"
import { route } from "./route.js"

/** What a new device's proof of possession signs when it redeems a link code. */
export const linkMessage = (code: string, loginKeyB64: string) => `mls-chat/v1 link device\n${code}\n${loginKeyB64}`

/** What a new device's proof of possession signs when an authenticated device of account `userId` adds it. */
export const addDeviceMessage = (userId: string, loginKeyB64: string) =>
  `mls-chat/v1 add device\n${userId}\n${loginKeyB64}`

/** How long a link code can be redeemed. */
export const linkCodeTtlMs = 10 * 60_000

/** The one-time link code (rpc-schema/common.ts: the daemon's `identity.link` takes it too). The server stores its SHA-256. */
export { LinkCode }

export const LinkCodeResult = Type.Object({
  code: LinkCode,
  /** After this the code is refused (invalid_link_code). */
  expiresAt: TimestampMs,
})
export type LinkCodeResult = Static<typeof LinkCodeResult>

/**
 * Makes a one-time code that links one new device to the caller's account, valid for `linkCodeTtlMs`. An account has
 * at most 8 unredeemed, unexpired codes (more are rate_limited).
 */
export const createLinkCode = route({
  method: "POST",
  path: "/v1/devices/link-codes",
  auth: true,
  params: undefined,
  body: undefined,
  status: 201,
  response: LinkCodeResult,
  errors: ["rate_limited"],
})

export const LinkDeviceBody = Strict({
  code: LinkCode,
  /** The new device's own Ed25519 login key. */
  loginKey: SignatureKey,
  /** Signature of `linkMessage(code, loginKey)` with that key. */
  proof: Ed25519Signature,
})
export type LinkDeviceBody = Static<typeof LinkDeviceBody>

/**
 * Redeems a link code: adds a device with this login key to the code's account. The code is used up by the first
 * redemption whose proof verifies; a wrong, used or expired code is invalid_link_code. Attempts are limited per
 * client address (the login-challenge budget).
 */
export const linkDevice = route({
  method: "POST",
  path: "/v1/devices/link",
  auth: false,
  params: undefined,
  body: LinkDeviceBody,
  status: 201,
  response: DeviceIdentity,
  errors: ["invalid_link_code", "bad_signature", "conflict", "rate_limited"],
})

export const AddDeviceBody = Strict({
  /** The new device's own Ed25519 login key. */
  loginKey: SignatureKey,
  /** Signature of `addDeviceMessage(userId, loginKey)` with that key (the caller's account's user id). */
  proof: Ed25519Signature,
})
export type AddDeviceBody = Static<typeof AddDeviceBody>

/** An authenticated device adds another device to its own account. A login key already in use is conflict. */
export const addDevice = route({
  method: "POST",
  path: "/v1/devices",
  auth: true,
  params: undefined,
  body: AddDeviceBody,
  status: 201,
  response: DeviceIdentity,
  errors: ["bad_signature", "conflict"],
})

export const DeviceParams = Strict({ deviceId: DeviceId })
export type DeviceParams = Static<typeof DeviceParams>

export const RemoveDeviceResult = Type.Object({ deviceId: DeviceId, removedAt: TimestampMs })
export type RemoveDeviceResult = Static<typeof RemoveDeviceResult>

/**
 * Removes a device of the caller's account (the caller's own device too). In one transaction: the device is marked
 * removed, its sessions and challenges and KeyPackages (the last-resort key too) are deleted; then its streams close
 * with `closeCodes.sessionEnded` ("device removed"). Its group memberships stay until a Commit removes its leaves
 * (the server cannot remove a leaf). A device of another account is unknown_device; the account's last active
 * device cannot be removed (conflict); removing a removed device answers its removal again.
 */
export const removeDevice = route({
  method: "DELETE",
  path: "/v1/devices/:deviceId",
  auth: true,
  params: DeviceParams,
  body: undefined,
  status: 200,
  response: RemoveDeviceResult,
  errors: ["unknown_device", "conflict"],
})
