/**
 * Authenticated calls to the server: challenge/response login with the identity key, the bearer token kept in
 * memory, and a 401 answered by one transparent re-login and retry. Every call reports whether the server was
 * reachable, which drives the daemon's connection state.
 */
import type { Static } from "@sinclair/typebox"
import { AppError } from "../../rpc-schema/errors.js"
import { auth, type RouteDescriptor } from "../../rpc-schema/server/index.js"
import type { RouteInput, ServerClient } from "./httpClient.js"

export type LinkListener = (reachable: boolean, error?: string) => void

export class Session {
  private token: string | undefined
  private loggingIn: Promise<string> | undefined

  constructor(
    readonly client: ServerClient,
    readonly username: string,
    private readonly sign: (text: string) => string,
    private readonly onLink: LinkListener,
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

  /** Reports the link state seen by another channel (the stream). */
  reachable(ok: boolean, error?: string): void {
    this.onLink(ok, error)
  }

  private async login(): Promise<string> {
    const c = await this.client.call(auth.challenge, { body: { username: this.username } })
    const s = await this.client.call(auth.login, {
      body: { challengeId: c.challengeId, signature: this.sign(auth.loginMessage(this.username, c.nonce)) },
    })
    this.token = s.token
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
