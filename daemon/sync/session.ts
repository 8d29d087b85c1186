/**
 * Authenticated calls to the server as this device: challenge/response login with the device's login key, the bearer
 * token kept in memory, and a 401 answered by one transparent re-login and retry. Every call reports whether the
 * server was reachable, which drives the daemon's connection state. Each login tells who this device is (user id,
 * handle, device id, client id): a profile from before devices learns its ids from its first one.
 */
import type { Static } from "@sinclair/typebox"
import { AppError } from "../../rpc-schema/errors.js"
import type { DeviceIdentity } from "../../rpc-schema/server/http/auth.js"
import { auth, type RouteDescriptor } from "../../rpc-schema/server/index.js"
import type { RouteInput, ServerClient } from "./httpClient.js"

export type LinkListener = (reachable: boolean, error?: string) => void

export class Session {
  private token: string | undefined
  private loggingIn: Promise<string> | undefined
  /** What the last login said this device is. */
  device: DeviceIdentity | undefined

  constructor(
    readonly client: ServerClient,
    /** The account (handle or user id) and this device; no device id: the account's oldest (a profile from before devices). */
    readonly account: { user: string; deviceId: string | null },
    private readonly sign: (text: string) => string,
    private readonly onLink: LinkListener,
    private readonly onLogin: (device: DeviceIdentity) => void = () => undefined,
  ) {}

  /** The current token, logging in when there is none (one login at a time). */
  private ensureToken(): Promise<string> {
    if (this.token) return Promise.resolve(this.token)
    this.loggingIn ??= this.login().finally(() => (this.loggingIn = undefined))
    return this.loggingIn
  }

  /** A bearer token for the stream's upgrade request; `stale` (a token refused with 401) forces a new login. */
  async bearer(stale?: string): Promise<string> {
    if (stale !== undefined && this.token === stale) this.token = undefined
    return this.watch(() => this.ensureToken())
  }

  /** Logs in now (when not logged in) and answers who this device is. */
  async whoami(): Promise<DeviceIdentity> {
    await this.bearer()
    return this.device!
  }

  /** Reports the link state seen by another channel (the stream). */
  reachable(ok: boolean, error?: string): void {
    this.onLink(ok, error)
  }

  private async login(): Promise<string> {
    const { user, deviceId } = this.account
    const c = await this.client.call(auth.challenge, {
      body: { username: user, ...(deviceId !== null && { deviceId }) },
    })
    const s = await this.client.call(auth.login, {
      body: { challengeId: c.challengeId, signature: this.sign(auth.loginMessage(c.handle, c.nonce)) },
    })
    this.token = s.token
    this.device = { userId: s.userId, handle: s.handle, deviceId: s.deviceId, clientId: s.clientId }
    this.onLogin(this.device)
    return s.token
  }

  /** Calls an authenticated route; a 401 (expired or revoked token) renews the token once and retries. */
  async call<D extends RouteDescriptor>(d: D, input: RouteInput<D>): Promise<Static<D["response"]>> {
    return this.watch(async () => {
      const token = await this.ensureToken()
      try {
        return await this.client.call(d, input, token)
      } catch (err) {
        if (!(err instanceof AppError) || err.code !== "unauthenticated") throw err
        if (this.token === token) this.token = undefined
        return this.client.call(d, input, await this.ensureToken())
      }
    })
  }

  /** Calls a route that needs no token. */
  callPublic<D extends RouteDescriptor>(d: D, input: RouteInput<D>): Promise<Static<D["response"]>> {
    return this.watch(() => this.client.call(d, input))
  }

  private async watch<T>(f: () => Promise<T>): Promise<T> {
    try {
      const r = await f()
      this.onLink(true)
      return r
    } catch (err) {
      if (err instanceof AppError && err.code === "server_unreachable") this.onLink(false, err.message)
      else this.onLink(true)
      throw err
    }
  }
}
