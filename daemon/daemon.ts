/**
 * The daemon's core, one per profile: the store, the identity, the server session, pool maintenance and the
 * event bus. The RPC handlers call into it; main.ts builds it and tears it down.
 */
import type { Logger } from "pino"
import type { CiphersuiteImpl } from "ts-mls"
import { getSuite } from "../crypto/index.js"
import { toBase64Url } from "../rpc-schema/common.js"
import type { ConnectionState, DaemonStatusResult, RegistrationStatus } from "../rpc-schema/daemon/daemon.js"
import type { IdentityResult } from "../rpc-schema/daemon/identity.js"
import type { PoolStatusResult, PoolUsageResult } from "../rpc-schema/daemon/pool.js"
import { AppError } from "../rpc-schema/errors.js"
import type { Clock } from "./clock.js"
import { EventBus } from "./events.js"
import { newSignatureKeyPair, textSigner, type SignatureKeyPair } from "./mls/identity.js"
import { PoolMaintainer } from "./pool/maintainer.js"
import { KeyUsage } from "./pool/usage.js"
import type { MaintenancePolicy } from "./pool/policy.js"
import { openDatabase, type Db } from "./store/database.js"
import { EventStore } from "./store/eventStore.js"
import { IdentityStore, type StoredIdentity } from "./store/identityStore.js"
import { PoolStore } from "./store/poolStore.js"
import { UsageStore } from "./store/usageStore.js"
import { ServerClient } from "./sync/httpClient.js"
import { registerUser } from "./sync/registration.js"
import { Session } from "./sync/session.js"
import { recordInboxExpiry } from "./sync/inboxExpiry.js"
import { ServerStream, type StreamEvents } from "./sync/stream.js"
import { CursorStore } from "./store/cursorStore.js"
import { GroupStore } from "./store/groupStore.js"
import { OutboxStore } from "./store/outboxStore.js"
import { PinStore } from "./store/pinStore.js"
import { InvitationStore } from "./store/invitationStore.js"
import { SettingsStore } from "./store/settingsStore.js"
import type { InvitesMode } from "../rpc-schema/daemon/settings.js"
import { Directory } from "./groups/directory.js"
import { GroupService } from "./groups/groupService.js"
import { groupCursors, listGroups } from "./groups/queries.js"

export interface DaemonOptions {
  version: string
  profile: string
  dataDir: string
  dbPath: string
  socketPath: string
  /** Default server for registration (`--server`). */
  server: string | undefined
  /** Register this (normalised) user name on first run (`--username`), retrying while the server is unreachable. */
  username?: string
  /** `--invites` / $MLSD_INVITES: stored as the profile's setting at start; unset keeps the stored one. */
  invites?: InvitesMode
  policy: MaintenancePolicy
  clock: Clock
  log: Logger
}

/** What exists once the profile is registered. */
interface Online {
  identity: StoredIdentity
  client: ServerClient
  session: Session
  maintainer: PoolMaintainer
  usage: KeyUsage
  stream: ServerStream
  groups: GroupService
}

export class Daemon {
  readonly db: Db
  readonly identities: IdentityStore
  readonly pool: PoolStore
  readonly usageStore: UsageStore
  readonly events: EventBus
  readonly cursors: CursorStore
  readonly groupStore: GroupStore
  readonly outbox: OutboxStore
  readonly pins: PinStore
  readonly settings: SettingsStore
  readonly invitations: InvitationStore
  readonly startedAt: number
  private readonly startedPerf = performance.now()
  private online: Online | undefined
  private connection: ConnectionState = "offline"
  /** The registration attempt under way, if any. */
  private registering: Promise<IdentityResult> | undefined
  private registration: RegistrationStatus = {
    state: "unregistered",
    username: null,
    attempts: 0,
    lastError: null,
    nextRetryAt: null,
  }
  private registrationRetry: NodeJS.Timeout | undefined
  private closed = false

  constructor(readonly opts: DaemonOptions) {
    this.db = openDatabase(opts.dbPath)
    this.identities = new IdentityStore(this.db)
    this.pool = new PoolStore(this.db)
    this.usageStore = new UsageStore(this.db)
    this.events = new EventBus(new EventStore(this.db), opts.clock, opts.log.child({ part: "events" }))
    this.cursors = new CursorStore(this.db)
    this.groupStore = new GroupStore(this.db)
    this.outbox = new OutboxStore(this.db)
    this.pins = new PinStore(this.db)
    this.settings = new SettingsStore(this.db)
    this.invitations = new InvitationStore(this.db)
    if (opts.invites !== undefined) this.settings.setInvites(opts.invites, opts.clock.now())
    this.startedAt = opts.clock.now()
  }

  /**
   * Goes online when the profile is registered: session, first maintenance pass. Otherwise registers in the background
   * the name of `--username`, or the one a registration the server could not be reached for left pending.
   */
  start(): void {
    const id = this.identities.get()
    if (id?.registeredAt != null) {
      this.registration = { ...this.registration, state: "registered", username: id.username }
      return this.goOnline(id, new ServerClient(id.server))
    }
    const username = this.opts.username ?? id?.username
    if (username === undefined) return
    const server = id && id.username === username ? id.server : undefined
    void this.register(username, server).catch(() => undefined) // the outcome is in daemon.status
  }

  private suite(): Promise<CiphersuiteImpl> {
    return getSuite()
  }

  private keysOf(id: StoredIdentity): SignatureKeyPair {
    return { publicKey: id.signaturePublic, privateKey: id.signaturePrivate }
  }

  private newSession(id: StoredIdentity, client: ServerClient): Session {
    return new Session(client, id.username, textSigner(this.keysOf(id)), (ok, error) => {
      // While a stream exists, "connected" means the stream is up and caught up.
      if (!ok) this.setConnection("disconnected", error ?? null)
      else if (!this.online || this.online.stream.open) this.setConnection("connected", null)
    })
  }

  private goOnline(id: StoredIdentity, client: ServerClient, session = this.newSession(id, client)): void {
    // One array pair for the daemon's life: the crypto provider caches the signing key by array identity.
    const keys = this.keysOf(id)
    const usage = new KeyUsage({
      store: this.usageStore,
      events: this.events,
      clock: this.opts.clock,
      suspiciousLapses: this.opts.policy.suspiciousLapses,
      groupMates: () => {
        const active = listGroups(this.groupStore).filter((g) => g.status !== "removed")
        return new Set(active.flatMap((g) => g.members).filter((m) => m !== id.username))
      },
    })
    const maintainer: PoolMaintainer = new PoolMaintainer({
      pool: this.pool,
      session,
      username: id.username,
      keys,
      suite: () => this.suite(),
      clock: this.opts.clock,
      policy: this.opts.policy,
      usage,
      log: this.opts.log.child({ part: "pool" }),
      onPass: () => this.events.emit("pool.changed", { reason: "maintenance", status: maintainer.status() }),
    })
    const directory = new Directory(session, this.pins, this.events, this.opts.clock, {
      username: id.username,
      signaturePublic: keys.publicKey,
    })
    const groups = new GroupService({
      db: this.db,
      groups: this.groupStore,
      outbox: this.outbox,
      pool: this.pool,
      invitations: this.invitations,
      settings: this.settings,
      events: this.events,
      clock: this.opts.clock,
      log: this.opts.log.child({ part: "groups" }),
      session,
      username: id.username,
      keys,
      suite: () => this.suite(),
      directory,
      onKeyConsumed: () => maintainer.soon(),
    })
    const stream = new ServerStream(
      session,
      this.cursors,
      this.opts.clock,
      this.streamEvents(maintainer, usage, groups),
      this.opts.log.child({ part: "stream" }),
    )
    this.online = { identity: id, client, session, maintainer, usage, stream, groups }
    if (this.connection === "offline") this.setConnection("connecting", null)
    void maintainer.request()
    stream.start()
    // Whatever a crash or an outage left in the outbox goes out now.
    groups.sender.kick()
  }

  /** Key-directory events from the stream: local metadata first, then a maintenance pass soon. */
  private streamEvents(maintainer: PoolMaintainer, usage: KeyUsage, groups: GroupService): StreamEvents {
    return {
      onGroupItem: (item) => (item.kind === "welcome" ? groups.onWelcome(item) : groups.onRemoved(item)),
      onEntries: (entries) => groups.onEntries(entries),
      onPruned: (frame) => groups.onPruned(frame),
      onGivenUp: (what, error) => groups.onGivenUp(what, error),
      onInboxExpired: (report) => {
        if (recordInboxExpiry(this.db, this.cursors, this.events, report, this.opts.clock.now())) {
          this.opts.log.warn(report, "inbox items expired on the server unread")
          // Lost key-directory events (reservations, spends) are repaired by reconciling with the server.
          maintainer.soon()
        }
      },
      groupCursors: () => groupCursors(this.groupStore),
      onKeyEvent: (item) => {
        const now = this.opts.clock.now()
        this.db.transaction(() => {
          if (item.kind !== "poolLow" && !item.lastResort) {
            const k = this.pool.keys().find((x) => x.ref === item.ref)
            const patch =
              item.kind === "keyReserved"
                ? { state: "reserved" as const, reservedAt: now, reservedBy: item.by }
                : item.kind === "keySpent"
                  ? { state: "spent" as const, spentAt: now }
                  : { state: "available" as const, reservedAt: null, reservedBy: null }
            const from = item.kind === "keyReleased" ? ["reserved"] : ["created", "available", "reserved"]
            if (k && from.includes(k.state)) this.pool.update([[item.ref, patch]])
          }
          usage.record(item)
        })()
        const reason = { keyReserved: "reserved", keySpent: "spent", keyReleased: "released", poolLow: "low" }[
          item.kind
        ]
        this.events.emit("pool.changed", { reason, status: maintainer.status() })
        maintainer.soon()
      },
      onState: (up, error) => this.setConnection(up ? "connected" : "disconnected", error ?? null),
    }
  }

  private setConnection(state: ConnectionState, error: string | null): void {
    if (state === this.connection) return
    const was = this.connection
    this.connection = state
    this.opts.log.info({ state, error }, "connection changed")
    this.events.emit("connection.changed", { state, server: this.online?.identity.server ?? null, error })
    // Back after an outage: maintenance catches up on whatever happened meanwhile; the outbox goes out.
    if (state === "connected" && was === "disconnected") this.online?.maintainer.soon()
    if (state === "connected") this.online?.groups.sender.online()
  }

  identity(): IdentityResult {
    const id = this.identities.get()
    return {
      registered: id?.registeredAt != null,
      username: id?.registeredAt != null ? id.username : null,
      server: id?.registeredAt != null ? id.server : null,
      signatureKey: id?.registeredAt != null ? toBase64Url(id.signaturePublic) : null,
      registeredAt: id?.registeredAt ?? null,
    }
  }

  /**
   * Registers `username` (already normalised). When the server cannot be reached the key stays pending and the
   * attempt is repeated in the background with backoff (0.5 s doubling to 30 s, full jitter) until it gets an answer;
   * the caller still hears `server_unreachable` for this attempt.
   */
  async register(username: string, server: string | undefined): Promise<IdentityResult> {
    const base = (server ?? this.opts.server)?.replace(/\/$/, "")
    const id = this.identities.get()
    // Asking again for what is done or under way (the background retry may have got there first) is no error.
    const same = id?.username === username && (server === undefined || id.server === base)
    if (id?.registeredAt != null) {
      if (same) return this.identity()
      throw new AppError("already_registered", `profile ${this.opts.profile} is registered already`)
    }
    if (this.registering) {
      if (this.registration.username === username) return this.registering
      throw new AppError("conflict", "a registration of another name is in progress")
    }
    if (!base) throw new AppError("invalid_request", "no server: pass `server` or start the daemon with --server")
    this.registering = this.attemptRegistration(username, base).finally(() => (this.registering = undefined))
    return this.registering
  }

  private async attemptRegistration(username: string, base: string): Promise<IdentityResult> {
    clearTimeout(this.registrationRetry)
    const renamed = this.registration.username !== username
    this.registration = {
      state: "registering",
      username,
      attempts: renamed ? 0 : this.registration.attempts,
      lastError: renamed ? null : this.registration.lastError,
      nextRetryAt: null,
    }
    const pending = this.identities.get()
    // A retry of an interrupted registration of the same name keeps its key: the server may have it already.
    const reuse = pending && pending.username === username && pending.server === base
    const keys = reuse ? this.keysOf(pending) : newSignatureKeyPair()
    const now = this.opts.clock.now()
    if (!reuse) {
      this.identities.savePending({
        username,
        server: base,
        signaturePublic: keys.publicKey,
        signaturePrivate: keys.privateKey,
        createdAt: now,
      })
    }
    const id = this.identities.get()!
    const client = new ServerClient(base)
    const session = this.newSession(id, client)
    try {
      await registerUser(session, keys.publicKey, textSigner(keys))
    } catch (err) {
      // Unreachable: keep the pending key and retry by itself. Refused: forget it.
      const unreachable = err instanceof AppError && err.code === "server_unreachable"
      if (!unreachable) this.identities.deletePending()
      await client.close()
      this.registrationFailed(err, unreachable ? base : undefined)
      throw err
    }
    this.identities.markRegistered(this.opts.clock.now())
    this.registration = { state: "registered", username, attempts: 0, lastError: null, nextRetryAt: null }
    this.opts.log.info({ username, server: base }, "registered")
    this.goOnline(this.identities.get()!, client, session)
    return this.identity()
  }

  /** Records a failed attempt; with `retryAt` (the server was unreachable) schedules the next one. */
  private registrationFailed(err: unknown, retryAt: string | undefined): void {
    const e = err instanceof AppError ? err : new AppError("internal", (err as Error)?.message ?? String(err))
    const attempts = this.registration.attempts + 1
    const lastError = { code: e.code, message: e.message }
    if (retryAt === undefined || this.closed) {
      this.registration = { ...this.registration, state: "failed", attempts, lastError, nextRetryAt: null }
      this.opts.log.warn({ username: this.registration.username, ...lastError }, "registration refused")
      return
    }
    const delay = Math.round(Math.random() * Math.min(30_000, 500 * 2 ** Math.min(attempts - 1, 20)))
    const username = this.registration.username!
    this.registration = { state: "waiting", username, attempts, lastError, nextRetryAt: this.opts.clock.now() + delay }
    this.opts.log.info({ username, server: retryAt, delay }, "server unreachable; registration retried later")
    this.registrationRetry = setTimeout(() => this.retryRegistration(retryAt), delay).unref()
  }

  private retryRegistration(server: string): void {
    if (this.closed || this.registration.state !== "waiting") return
    void this.register(this.registration.username!, server).catch(() => undefined)
  }

  /** `daemon.reconnect`: everything that waits for a backoff tries now. */
  reconnect(): DaemonStatusResult {
    const pending = this.identities.get()
    if (this.registration.state === "waiting" && pending) {
      clearTimeout(this.registrationRetry)
      this.retryRegistration(pending.server)
    }
    if (this.online) {
      this.online.stream.reconnectNow()
      void this.online.maintainer.request()
      this.online.groups.sender.online()
    }
    return this.status()
  }

  private requireOnline(): Online {
    if (!this.online) throw new AppError("not_registered", `profile ${this.opts.profile} has no identity yet`)
    return this.online
  }

  poolStatus(): PoolStatusResult {
    return this.requireOnline().maintainer.status()
  }

  /** Who reserved, spent and let lapse this profile's keys since `since` (default 24 h ago). */
  poolUsage(since: number | undefined): PoolUsageResult {
    const { usage } = this.requireOnline()
    return usage.report(since ?? this.opts.clock.now() - 24 * 3600_000)
  }

  async poolRefresh(): Promise<PoolStatusResult> {
    const { maintainer } = this.requireOnline()
    await maintainer.request()
    return maintainer.status()
  }

  /** Groups and messages: registered profiles only. */
  groups(): GroupService {
    return this.requireOnline().groups
  }

  /** For pool.list: registered profiles only, like the rest of `pool.*`. */
  poolStore(): PoolStore {
    this.requireOnline()
    return this.pool
  }

  status(): DaemonStatusResult {
    const id = this.identity()
    const now = this.opts.clock.now()
    return {
      version: this.opts.version,
      profile: this.opts.profile,
      pid: process.pid,
      username: id.username,
      server: id.server ?? this.opts.server ?? null,
      connection: this.connection,
      registration: this.registration,
      startedAt: this.startedAt,
      // Real elapsed time, independent of a test clock.
      uptimeMs: Math.round(performance.now() - this.startedPerf),
      now,
      dataDir: this.opts.dataDir,
      socketPath: this.opts.socketPath,
    }
  }

  async close(): Promise<void> {
    this.closed = true
    clearTimeout(this.registrationRetry)
    const online = this.online
    this.online = undefined
    if (online) {
      online.groups.close()
      online.stream.stop()
      await online.maintainer.stop()
      await online.client.close().catch(() => undefined)
    }
    this.db.close()
  }
}
