/**
 * The daemon's authentication service (DESIGN §3): a credential names a user, and the user's signature key must be
 * the one the server's directory lists (GET /v1/users/:u), pinned on first sight. A key that differs from the pinned
 * one is refused and reported (`credential.refused`), never silently accepted, even if the directory changed too.
 */
import { toBase64Url } from "../../rpc-schema/common.js"
import { AppError } from "../../rpc-schema/errors.js"
import { auth } from "../../rpc-schema/server/index.js"
import { fromBase64Url } from "../../rpc-schema/common.js"
import { sameBytes } from "../bytes.js"
import type { Clock } from "../clock.js"
import type { EventBus } from "../events.js"
import type { CredentialCheck, CredentialVerdict } from "../mls/credentialCheck.js"
import type { PinStore } from "../store/pinStore.js"
import type { Session } from "../sync/session.js"

export class Directory {
  /** A lookup that failed for a passing reason (server unreachable): the caller retries instead of refusing. */
  private transient: AppError | undefined

  constructor(
    private readonly session: Session,
    private readonly pins: PinStore,
    private readonly events: EventBus,
    private readonly clock: Clock,
    private readonly self: { username: string; signaturePublic: Uint8Array },
  ) {}

  /** The directory's key for `username`, checked against the pin (pinned when new); AppError when refused. */
  async keyFor(username: string): Promise<Uint8Array> {
    if (username === this.self.username) return this.self.signaturePublic
    const listed = fromBase64Url((await this.session.call(auth.getUser, { params: { username } })).signatureKey)
    const pinned = this.pins.get(username)
    if (pinned !== undefined && !sameBytes(pinned, listed)) {
      this.refused(username, listed, "the directory's key differs from the key pinned on first sight")
      throw new AppError("forbidden", `${username}'s signature key changed since it was first seen; refused`)
    }
    this.pins.pin(username, listed, this.clock.now())
    return listed
  }

  /** For ts-mls: every credential in a group goes through here. */
  readonly check: CredentialCheck = async (username, key): Promise<CredentialVerdict> => {
    if (username === this.self.username) {
      return sameBytes(key, this.self.signaturePublic)
        ? { kind: "accepted" }
        : this.refused(username, key, "not this profile's own key")
    }
    const pinned = this.pins.get(username)
    if (pinned !== undefined) {
      return sameBytes(pinned, key) ? { kind: "accepted" } : this.refused(username, key, "key changed since pinned")
    }
    let listed: Uint8Array
    try {
      listed = fromBase64Url((await this.session.call(auth.getUser, { params: { username } })).signatureKey)
    } catch (err) {
      if (err instanceof AppError && err.code === "unknown_user") return this.refused(username, key, "unknown user")
      this.transient = err instanceof AppError ? err : new AppError("internal", String(err))
      throw this.transient
    }
    if (!sameBytes(listed, key)) return this.refused(username, key, "key is not the directory's")
    this.pins.pin(username, listed, this.clock.now())
    return { kind: "accepted" }
  }

  /** A KeyPackage of `username` signed with a key other than the directory's: refused, and reported. */
  refuseKeyPackage(username: string, key: Uint8Array): void {
    this.refused(username, key, "the KeyPackage's signature key is not the directory's")
  }

  /** The transient failure behind the last refusal-by-exception, once (then forgotten). */
  takeTransient(): AppError | undefined {
    const t = this.transient
    this.transient = undefined
    return t
  }

  private refused(username: string, key: Uint8Array, reason: string): CredentialVerdict {
    this.events.emit("credential.refused", { username, reason, signatureKey: toBase64Url(key) })
    return { kind: "refused", reason }
  }
}
