/**
 * The daemon's authentication service (DESIGN §3): a credential names a user, and the user's signature key must be
 * the one the server's directory lists (GET /v1/users/:u), pinned on first sight. A key that differs from the pinned
 * one is refused and reported (`credential.refused`), never silently accepted, even if the directory changed too.
 * An identity that cannot be a user name is refused without a lookup, and every 4xx answer of the directory is a
 * refusal: only a passing failure (server unreachable, rate limited, 5xx) makes the caller try again later.
 */
import { TypeCompiler } from "@sinclair/typebox/compiler"
import { fromBase64Url, toBase64Url, Username } from "../../rpc-schema/common.js"
import { AppError } from "../../rpc-schema/errors.js"
import { auth } from "../../rpc-schema/server/index.js"
import { sameBytes } from "../../shared/bytes.js"
import type { Clock } from "../clock.js"
import type { EventBus } from "../events.js"
import type { CredentialCheck, CredentialVerdict } from "../mls/credentialCheck.js"
import type { PinStore } from "../store/pinStore.js"
import type { Session } from "../sync/session.js"

const username = TypeCompiler.Compile(Username)

/** Whether the directory's answer `err` means "no such user, ever" rather than "not now". */
function isRefusal(err: unknown): boolean {
  if (!(err instanceof AppError)) return false
  const status = (err.details as { status?: unknown } | undefined)?.status
  // 401 is this daemon's session (renewed by the session), 408 and 429 pass.
  return typeof status === "number" && status >= 400 && status < 500 && ![401, 408, 429].includes(status)
}

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
  readonly check: CredentialCheck = async (name, key): Promise<CredentialVerdict> => {
    if (name === this.self.username) {
      return sameBytes(key, this.self.signaturePublic)
        ? { kind: "accepted" }
        : this.refused(name, key, "not this profile's own key")
    }
    const pinned = this.pins.get(name)
    if (pinned !== undefined) {
      return sameBytes(pinned, key) ? { kind: "accepted" } : this.refused(name, key, "key changed since pinned")
    }
    // Not reported as credential.refused: that notification names a user, and this is none.
    if (!username.Check(name)) return { kind: "refused", reason: "the identity is not a user name" }
    let listed: Uint8Array
    try {
      listed = fromBase64Url((await this.session.call(auth.getUser, { params: { username: name } })).signatureKey)
    } catch (err) {
      if (isRefusal(err)) return this.refused(name, key, `the directory refused it: ${(err as AppError).code}`)
      this.transient = err instanceof AppError ? err : new AppError("internal", String(err))
      throw this.transient
    }
    if (!sameBytes(listed, key)) return this.refused(name, key, "key is not the directory's")
    this.pins.pin(name, listed, this.clock.now())
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
