/**
 * The daemon's authentication service (DESIGN §3): a leaf's credential names a device, and the device's MLS signature
 * key must be the one the server's directory lists for it (GET /v1/users/:u), pinned on first sight.
 *
 * - A client id `<user-id>:<device-id>@<domain>` is accepted only when the directory lists that client id as an
 *   active device of that account with that MLS key.
 * - A bare user name (a leaf from before devices) stands for the account's first device: accepted only when that
 *   device is active and its MLS key is the leaf's (the migration bound the old user key to it).
 * - A key that differs from the pinned one is refused and reported (`credential.refused`), never silently accepted,
 *   even if the directory changed too. A device seen for the first time of a user this profile knew other devices
 *   of (or of this account) is reported as `device.added`.
 *
 * An identity that is neither form is refused without a lookup, and every 4xx answer of the directory is a refusal:
 * only a passing failure (server unreachable, rate limited, 5xx) makes the caller try again later.
 */
import { TypeCompiler } from "@sinclair/typebox/compiler"
import { fromBase64Url, parseMlsClientId, toBase64Url, Username } from "../../rpc-schema/common.js"
import { AppError } from "../../rpc-schema/errors.js"
import type { GetUserResult } from "../../rpc-schema/server/http/auth.js"
import { auth } from "../../rpc-schema/server/index.js"
import { sameBytes } from "../../shared/bytes.js"
import type { Clock } from "../clock.js"
import type { EventBus } from "../events.js"
import type { CredentialCheck, CredentialVerdict } from "../mls/credentialCheck.js"
import type { ExternalJoinCheck } from "../mls/message.js"
import type { Pin, PinStore } from "../store/pinStore.js"
import type { Session } from "../sync/session.js"

const username = TypeCompiler.Compile(Username)

/** Whether the directory's answer `err` means "no such user, ever" rather than "not now". */
function isRefusal(err: unknown): boolean {
  if (!(err instanceof AppError)) return false
  const status = (err.details as { status?: unknown } | undefined)?.status
  // 401 is this daemon's session (renewed by the session), 408 and 429 pass.
  return typeof status === "number" && status >= 400 && status < 500 && ![401, 408, 429].includes(status)
}

/** This device, as the authentication service needs it. */
export interface SelfDevice {
  handle: string
  userId: string
  deviceId: string
  clientId: string
  signaturePublic: Uint8Array
}

/** Who a credential identity is: the account (handle, user id) and the device, as far as known. */
export interface Who {
  username: string
  userId: string | null
  deviceId: string | null
  clientId: string | null
  /** This device. */
  self: boolean
  /** This account (this device or another of its devices). */
  own: boolean
}

/** A device of an account that can be added to a group: active, MLS key bound, key checked against the pin. */
export interface UsableDevice {
  deviceId: string
  clientId: string
  signaturePublicKey: Uint8Array
}

/**
 * The user-name pins carried over from before devices learn the device each stands for (the account's first), so a
 * leaf from before devices is shown as that device. One lookup per such pin, once; a failed one is tried again the
 * next time the directory is asked about that account.
 */
export async function resolveLegacyPins(session: Session, pins: PinStore): Promise<void> {
  for (const handle of pins.unresolved()) {
    try {
      const account = await session.call(auth.getUser, { params: { username: handle } })
      const first = account.devices[0]
      if (first) pins.resolveLegacy(account.handle, account.userId, first.deviceId, first.clientId)
    } catch {
      // Unknown now or unreachable: the pin keeps its key, only the device stays unknown.
    }
  }
}

export class Directory {
  /** A lookup that failed for a passing reason (server unreachable): the caller retries instead of refusing. */
  private transient: AppError | undefined

  constructor(
    private readonly session: Session,
    private readonly pins: PinStore,
    private readonly events: EventBus,
    private readonly clock: Clock,
    private readonly self: SelfDevice,
  ) {}

  /** The account and every device of it, as the directory lists them now (handle or user id). */
  async account(user: string): Promise<GetUserResult> {
    const account = await this.session.call(auth.getUser, { params: { username: user } })
    const first = account.devices[0]
    if (first) this.pins.resolveLegacy(account.handle, account.userId, first.deviceId, first.clientId)
    return account
  }

  /**
   * The active devices of `user` with a bound MLS key, each checked against its pin (pinned when new). A key that
   * differs from the pinned one refuses the whole answer (`forbidden`, and `credential.refused`).
   */
  async usableDevices(user: string): Promise<{ userId: string; handle: string; devices: UsableDevice[] }> {
    const account = await this.account(user)
    const devices: UsableDevice[] = []
    for (const d of account.devices) {
      if (d.removedAt !== null || d.mlsKey === null) continue
      const key = fromBase64Url(d.mlsKey)
      if (d.clientId !== this.self.clientId) {
        const pinned = this.pins.get(d.clientId)
        if (pinned !== undefined && !sameBytes(pinned.signatureKey, key)) {
          this.refused(
            account.handle,
            d.clientId,
            key,
            "the directory's key differs from the key pinned on first sight",
          )
          throw new AppError(
            "forbidden",
            `${account.handle}'s signature key changed (device ${d.deviceId}) since it was first seen; refused`,
            { username: account.handle, deviceId: d.deviceId },
          )
        }
        this.pinDevice(d.clientId, account, d.deviceId, d.clientId, key)
      }
      devices.push({ deviceId: d.deviceId, clientId: d.clientId, signaturePublicKey: key })
    }
    return { userId: account.userId, handle: account.handle, devices }
  }

  /**
   * Whether a leaf is this device's: its client id, or (a group from before devices) the bare handle with this
   * device's key. A bare handle with another key is the account's first device, another device of this account.
   */
  isSelf(identity: string, key: Uint8Array): boolean {
    return (
      identity === this.self.clientId || (identity === this.self.handle && sameBytes(key, this.self.signaturePublic))
    )
  }

  /** Who a leaf is: this device, a pinned device, or (unknown) what its identity says. */
  who(identity: string, key: Uint8Array): Who {
    const own = (userId: string | null) => userId === this.self.userId
    if (this.isSelf(identity, key))
      return {
        username: this.self.handle,
        userId: this.self.userId,
        deviceId: this.self.deviceId,
        clientId: identity === this.self.clientId ? identity : null,
        self: true,
        own: true,
      }
    const pin = this.pins.get(identity)
    if (pin)
      return {
        username: pin.handle,
        userId: pin.userId,
        deviceId: pin.deviceId,
        clientId: pin.clientId,
        self: false,
        own: own(pin.userId),
      }
    const parsed = parseMlsClientId(identity)
    return {
      username: username.Check(identity) ? identity : "unknown",
      userId: parsed?.userId ?? null,
      deviceId: parsed?.deviceId ?? null,
      clientId: parsed ? identity : null,
      self: false,
      own: own(parsed?.userId ?? null),
    }
  }

  /**
   * The roster entry a Commit's `removes` names for a leaf: its device's client id (a leaf from before devices: the
   * device it stands for, as pinned; the bare handle, which the server reads as every device of the account, only
   * when that device is unknown).
   */
  rosterId(identity: string, key: Uint8Array): string {
    return this.who(identity, key).clientId ?? identity
  }

  /** For ts-mls: every credential in a group goes through here. */
  readonly check: CredentialCheck = async (identity, key): Promise<CredentialVerdict> => {
    if (this.isSelf(identity, key)) return { kind: "accepted" }
    if (identity === this.self.clientId)
      return this.refused(this.self.handle, identity, key, "not this device's own key")
    const pinned = this.pins.get(identity)
    if (pinned !== undefined) {
      return sameBytes(pinned.signatureKey, key)
        ? { kind: "accepted" }
        : this.refused(pinned.handle, identity, key, "key changed since pinned")
    }
    const parsed = parseMlsClientId(identity)
    // Not reported as credential.refused: that notification names a user, and this is none.
    if (parsed === undefined && !username.Check(identity))
      return { kind: "refused", reason: "the identity is neither a client id nor a user name" }
    let account: GetUserResult
    try {
      account = await this.account(parsed?.userId ?? identity)
    } catch (err) {
      if (isRefusal(err))
        return this.refused(null, identity, key, `the directory refused it: ${(err as AppError).code}`)
      this.transient = err instanceof AppError ? err : new AppError("internal", String(err))
      throw this.transient
    }
    // A bare user name stands for the account's first device (see the top of this file).
    const device = parsed ? account.devices.find((d) => d.clientId === identity) : account.devices[0]
    if (device === undefined) return this.refused(account.handle, identity, key, "the directory lists no such device")
    if (device.removedAt !== null)
      return this.refused(account.handle, identity, key, "the directory lists the device as removed")
    if (device.mlsKey === null || !sameBytes(fromBase64Url(device.mlsKey), key))
      return this.refused(account.handle, identity, key, "key is not the directory's")
    this.pinDevice(identity, account, device.deviceId, device.clientId, key)
    return { kind: "accepted" }
  }

  /**
   * The members' check of an external Commit (RFC 9420 §12.4.3.2) beyond the credential check ts-mls runs on the
   * joiner's leaf (directory key, pinned on first sight; a new device of a known account is `device.added`): the
   * joiner's account must have a leaf in the group already (a member's new device, or a member that lost sync; never
   * a stranger, whatever the server's roster says), and a Remove in it may remove only the joiner's own old leaf (its
   * resync), never someone else's.
   */
  readonly externalJoinCheck: ExternalJoinCheck = (joiner, removed, present) => {
    const account = this.who(joiner.identity, joiner.signaturePublicKey).userId
    if (account === null) return "the joiner's identity names no account"
    if (!present.some((m) => this.who(m.identity, m.signaturePublicKey).userId === account))
      return "the joiner's account has no device in the group"
    if (removed !== undefined && removed.identity !== joiner.identity)
      return "an external Commit may remove only the joiner's own old leaf"
    return undefined
  }

  /** A KeyPackage of the device `clientId` signed with a key other than the directory's: refused, and reported. */
  refuseKeyPackage(handle: string, clientId: string, key: Uint8Array): void {
    this.refused(handle, clientId, key, "the KeyPackage's signature key is not the directory's")
  }

  /** The transient failure behind the last refusal-by-exception, once (then forgotten). */
  takeTransient(): AppError | undefined {
    const t = this.transient
    this.transient = undefined
    return t
  }

  /**
   * Pins a device's key on first sight. A first sight of a device of a user this profile knew other devices of, or of
   * this account, is `device.added` (recorded with the pin, so it is told once).
   */
  private pinDevice(
    identity: string,
    account: { userId: string; handle: string },
    deviceId: string,
    clientId: string,
    key: Uint8Array,
  ): void {
    const pin: Pin = {
      identity,
      handle: account.handle,
      userId: account.userId,
      deviceId,
      clientId,
      signatureKey: key,
      pinnedAt: this.clock.now(),
    }
    const own = account.userId === this.self.userId
    const knew = own || this.pins.ofUser(account.userId, account.handle).some((p) => p.deviceId !== deviceId)
    this.pins.db.transaction(() => {
      if (this.pins.pin(pin) && knew)
        this.events.emit("device.added", {
          username: account.handle,
          userId: account.userId,
          deviceId,
          clientId,
          signatureKey: toBase64Url(key),
          own,
        })
    })()
  }

  private refused(handle: string | null, identity: string, key: Uint8Array, reason: string): CredentialVerdict {
    this.events.emit("credential.refused", {
      username: handle,
      clientId: identity,
      reason,
      signatureKey: toBase64Url(key),
    })
    return { kind: "refused", reason }
  }
}
