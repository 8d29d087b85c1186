/**
 * The HTTP side of a third-party client of mls-chat's server (core-crypto in the tests), typed by the route
 * descriptors of rpc-schema/server: the steps of server/README.md's walk-through, nothing of the daemon's logic.
 * Each device has its own Ed25519 login key; its MLS key stays inside core-crypto and is bound by its first
 * KeyPackage upload. The typed call itself is the daemon's `ServerClient.call` (one HTTP client per concern).
 */
import type { Static } from "@sinclair/typebox"
import { toBase64Url } from "../../rpc-schema/common.js"
import { auth, devices, groups, inbox, keys } from "../../rpc-schema/server/index.js"
import type { RouteDescriptor } from "../../rpc-schema/server/index.js"
import type { RouteInput, ServerClient } from "../../daemon/sync/httpClient.js"
import { newIdentity, signText } from "../helpers/users.js"
import type { Identity } from "../helpers/users.js"

type DeviceIdentity = Static<typeof auth.DeviceIdentity>

/** One device of an account, logged in: every call acts as this device. */
export class ServerDevice {
  private constructor(
    private readonly api: ServerClient,
    readonly identity: DeviceIdentity,
    private readonly token: string,
  ) {}

  /** Registers handle `handle` (an account with this first device) with a fresh login key, and logs in. */
  static async register(api: ServerClient, handle: string): Promise<ServerDevice> {
    const key = newIdentity()
    const signatureKey = toBase64Url(key.publicKey)
    const proof = signText(key, auth.registrationMessage(handle, signatureKey))
    const identity = await api.call(auth.register, { body: { username: handle, signatureKey, proof } })
    return ServerDevice.login(api, identity, key)
  }

  /** Challenge/response for the named device, signed with its login key. */
  static async login(api: ServerClient, identity: DeviceIdentity, key: Identity): Promise<ServerDevice> {
    const c = await api.call(auth.challenge, { body: { username: identity.userId, deviceId: identity.deviceId } })
    const signature = signText(key, auth.loginMessage(c.handle, c.nonce))
    const s = await api.call(auth.login, { body: { challengeId: c.challengeId, signature } })
    return new ServerDevice(
      api,
      { userId: s.userId, handle: s.handle, deviceId: s.deviceId, clientId: s.clientId },
      s.token,
    )
  }

  /** Adds a device to this account with its own fresh login key (the direct add), and logs it in. */
  async addDevice(): Promise<ServerDevice> {
    const key = newIdentity()
    const loginKey = toBase64Url(key.publicKey)
    const proof = signText(key, devices.addDeviceMessage(this.identity.userId, loginKey))
    const identity = await this.call(devices.addDevice, { body: { loginKey, proof } })
    return ServerDevice.login(this.api, identity, key)
  }

  /** Removes a device of this account (a lost laptop); it can never log in again. */
  removeDevice(deviceId: string) {
    return this.call(devices.removeDevice, { params: { deviceId } })
  }

  /** Uploads bare KeyPackages to this device's pool; the first accepted one binds the device's MLS key. */
  async uploadKeyPackages(keyPackages: Uint8Array[]) {
    const r = await this.call(keys.upload, {
      params: { username: this.identity.userId },
      body: { keyPackages: keyPackages.map(toBase64Url) },
    })
    return r.results
  }

  getUser(user: string) {
    return this.call(auth.getUser, { params: { username: user } })
  }

  /** One KeyPackage per active device of `target` (handle or user id), or of the one device a client id names. */
  reserve(target: string) {
    return this.call(keys.reserve, { body: { target } })
  }

  createGroup(groupId: Uint8Array) {
    return this.call(groups.createGroup, { body: { groupId: toBase64Url(groupId) } })
  }

  /** Posts a Commit with the KeyPackages it spends, the client ids it removes and the Welcome of the added. */
  commit(
    groupId: Uint8Array,
    commit: Uint8Array,
    spent: { ref: string; reservationId: string }[],
    removes: string[],
    welcome?: Uint8Array,
  ) {
    return this.call(groups.commit, {
      params: { groupId: toBase64Url(groupId) },
      body: {
        commit: toBase64Url(commit),
        keyPackages: spent,
        removes,
        ...(welcome !== undefined && { welcome: toBase64Url(welcome) }),
      },
    })
  }

  postMessage(groupId: Uint8Array, message: Uint8Array) {
    return this.call(groups.postMessage, {
      params: { groupId: toBase64Url(groupId) },
      body: { message: toBase64Url(message) },
    })
  }

  /** The group log after `after` (one page). */
  async readLog(groupId: Uint8Array, after: number) {
    const r = await this.call(groups.readLog, { params: { groupId: toBase64Url(groupId) }, query: { after } })
    return r.entries
  }

  /** This device's unacknowledged inbox items after `after`. */
  async readInbox(after = 0) {
    const r = await this.call(inbox.readInbox, { query: { after } })
    return r.items
  }

  private call<D extends RouteDescriptor>(d: D, input: RouteInput<D>): Promise<Static<D["response"]>> {
    return this.api.call(d, input, this.token)
  }
}
