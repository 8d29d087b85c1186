/**
 * The daemon's core, one per profile: the store, the identity, the server session, pool maintenance and the
 * event bus. The RPC handlers call into it; main.ts builds it and tears it down.
 */
import type { Logger } from "pino"
import type { CiphersuiteImpl } from "ts-mls"
import { getSuite } from "../crypto/index.js"
import { toBase64Url } from "../rpc-schema/common.js"
import type { ConnectionState, DaemonStatusResult, RegistrationStatus } from "../rpc-schema/daemon/daemon.js"
import type {
  IdentityDevicesResult,
  IdentityLinkCodeResult,
  IdentityRemoveDeviceResult,
  IdentityResult,
} from "../rpc-schema/daemon/identity.js"
import type { DeviceIdentity } from "../rpc-schema/server/http/auth.js"
import { devices as deviceRoutes } from "../rpc-schema/server/index.js"
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
import { linkDevice, registerUser } from "./sync/registration.js"
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
import { DeviceSync } from "./groups/devices.js"
import { Directory, resolveLegacyPins } from "./groups/directory.js"
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
  /** Link to an existing account with this code on first run (`--link`); not retried. */
  link?: string
  /** `--invites` / $MLSD_INVITES: stored as the profile's setting at start; unset keeps the stored one. */
  invites?: InvitesMode
  policy: MaintenancePolicy
  clock: Clock
  log: Logger
}

/** What exists once the profile is registered and knows which device it is. */
interface Online {
  identity: StoredIdentity & { userId: string; deviceId: string; clientId: string }
  client: ServerClient
  session: Session
  maintainer: PoolMaintainer
  usage: KeyUsage
  stream: ServerStream
  groups: GroupService
  devices: DeviceSync
  deviceTimer: NodeJS.Timeout
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
  /** A profile from before devices waiting to learn its ids at its first login (retried while unreachable). */
  private adoptRetry: NodeJS.Timeout | undefined
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
    if (this.opts.link !== undefined && id === undefined) {
      void this.link(this.opts.link, undefined).catch((err: unknown) => {
        this.opts.log.warn({ err: (err as Error).message }, "linking this device failed; it stays unregistered")
      })
      return
    }
    const username = this.opts.username ?? id?.username
    // A pending link (handle unknown) is not retried: its code was single use.
    if (username === undefined || username === "") return
    const server = id && id.username === username ? id.server : undefined
    void this.register(username, server).catch(() => undefined) // the outcome is in daemon.status
  }

  private suite(): Promise<CiphersuiteImpl> {
    return getSuite()
  }

  /** The MLS signature key pair. */
  private keysOf(id: StoredIdentity): SignatureKeyPair {
    return { publicKey: id.signaturePublic, privateKey: id.signaturePrivate }
  }

  private loginKeysOf(id: StoredIdentity): SignatureKeyPair {
    return { publicKey: id.loginPublic, privateKey: id.loginPrivate }
  }

  private newSession(id: StoredIdentity, client: ServerClient): Session {
    return new Session(
      client,
      { user: id.userId ?? id.username, deviceId: id.deviceId },
      textSigner(this.loginKeysOf(id)),
      (ok, error) => {
        // While a stream exists, "connected" means the stream is up and caught up.
        if (!ok) this.setConnection("disconnected", error ?? null)
        else if (!this.online || this.online.stream.open) this.setConnection("connected", null)
      },
      (device) => {
        // A profile from before devices learns its ids; a renamed handle is followed.
        const now = this.identities.get()
        if (now?.registeredAt != null && (now.clientId !== device.clientId || now.username !== device.handle))
          this.identities.setDevice(device)
      },
    )
  }

  /**
   * Online once the profile knows which device it is. A profile from before devices logs in first (the server maps
   * it to its account's first device) and stores the ids; while the server cannot be reached that is retried.
   */
  private goOnline(id: StoredIdentity, client: ServerClient, session = this.newSession(id, client), attempt = 0): void {
    if (this.closed) return
    if (id.userId !== null && id.deviceId !== null && id.clientId !== null)
      return this.online_({ ...id, userId: id.userId, deviceId: id.deviceId, clientId: id.clientId }, client, session)
    this.setConnection("connecting", null)
    session.whoami().then(
      async () => {
        await resolveLegacyPins(session, this.pins)
        this.goOnline(this.identities.get()!, client, session)
      },
      (err: unknown) => {
        const unreachable = err instanceof AppError && ["server_unreachable", "rate_limited"].includes(err.code)
        this.opts.log.warn({ err: (err as Error).message, unreachable }, "first login as a device failed")
        if (!unreachable) return
        const delay = Math.round(Math.random() * Math.min(30_000, 500 * 2 ** Math.min(attempt, 20)))
        this.adoptRetry = setTimeout(() => this.goOnline(id, client, session, attempt + 1), delay).unref()
      },
    )
  }

  private online_(id: Online["identity"], client: ServerClient, session: Session): void {
    // One array pair for the daemon's life: the crypto provider caches the signing key by array identity.
    const keys = this.keysOf(id)
    const directory = new Directory(session, this.pins, this.events, this.opts.clock, {
      handle: id.username,
      userId: id.userId,
      deviceId: id.deviceId,
      clientId: id.clientId,
      signaturePublic: keys.publicKey,
    })
    const usage = new KeyUsage({
      store: this.usageStore,
      events: this.events,
      clock: this.opts.clock,
      suspiciousLapses: this.opts.policy.suspiciousLapses,
      groupMates: () => {
        const active = listGroups(this.groupStore, directory).filter((g) => g.status !== "removed")
        return new Set(active.flatMap((g) => g.members).filter((m) => m !== id.username))
      },
    })
    const maintainer: PoolMaintainer = new PoolMaintainer({
      pool: this.pool,
      session,
      username: id.username,
      clientId: id.clientId,
      keys,
      suite: () => this.suite(),
      clock: this.opts.clock,
      policy: this.opts.policy,
      usage,
      log: this.opts.log.child({ part: "pool" }),
      onPass: () => this.events.emit("pool.changed", { reason: "maintenance", status: maintainer.status() }),
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
      userId: id.userId,
      deviceId: id.deviceId,
      clientId: id.clientId,
      keys,
      suite: () => this.suite(),
      directory,
      onKeyConsumed: () => maintainer.soon(),
    })
    const stream = new ServerStream(
      session,
      this.cursors,
      this.opts.clock,
      this.streamEvents(maintainer, usage, groups, () => devices),
      this.opts.log.child({ part: "stream" }),
    )
    // The account's devices in this device's groups: at start, then on the maintenance timer.
    const devices = new DeviceSync(groups)
    const deviceTimer = setInterval(() => devices.request(), this.opts.policy.maintenanceIntervalMs).unref()
    this.online = { identity: id, client, session, maintainer, usage, stream, groups, devices, deviceTimer }
    if (this.connection === "offline") this.setConnection("connecting", null)
    // The first device pass follows the first maintenance pass: joining a group by external Commit needs this
    // device's MLS key bound on the server, which its first KeyPackage upload does.
    void maintainer.request().then(
      () => devices.request(),
      () => devices.request(),
    )
    stream.start()
    // Whatever a crash or an outage left in the outbox goes out now.
    groups.sender.kick()
  }

  /** Key-directory events from the stream: local metadata first, then a maintenance pass soon. */
  private streamEvents(
    maintainer: PoolMaintainer,
    usage: KeyUsage,
    groups: GroupService,
    devices: () => DeviceSync,
  ): StreamEvents {
    return {
      // A removed device is taken out at once; a new one is added once it has KeyPackages: the directory is watched
      // for that as for a link code of our own.
      onDeviceChange: (item) =>
        item.kind === "deviceRemoved"
          ? devices().request()
          : devices().watchLink(this.opts.clock.now() + deviceRoutes.linkCodeTtlMs),
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
    const r = id?.registeredAt != null ? id : undefined
    return {
      registered: r !== undefined,
      username: r?.username ?? null,
      userId: r?.userId ?? null,
      deviceId: r?.deviceId ?? null,
      clientId: r?.clientId ?? null,
      server: r?.server ?? null,
      signatureKey: r ? toBase64Url(r.signaturePublic) : null,
      loginKey: r ? toBase64Url(r.loginPublic) : null,
      registeredAt: r?.registeredAt ?? null,
    }
  }

  /**
   * `identity.link`: this fresh profile becomes a new device of the account a link code was made for. Its own login
   * and MLS keys are made here; only the code came from the other device. Not retried: codes are single use, and an
   * answer lost on the way leaves a device on the server this profile cannot prove is its own (ask for a new code).
   */
  async link(code: string, server: string | undefined): Promise<IdentityResult> {
    const base = (server ?? this.opts.server)?.replace(/\/$/, "")
    if (this.identities.get()?.registeredAt != null)
      throw new AppError("already_registered", `profile ${this.opts.profile} is registered already`)
    if (this.registering) throw new AppError("conflict", "a registration is in progress")
    if (!base) throw new AppError("invalid_request", "no server: pass `server` or start the daemon with --server")
    this.registering = this.attemptLink(code, base).finally(() => (this.registering = undefined))
    return this.registering
  }

  private async attemptLink(code: string, base: string): Promise<IdentityResult> {
    clearTimeout(this.registrationRetry)
    const mls = newSignatureKeyPair()
    const login = newSignatureKeyPair()
    // The handle is learnt from the answer.
    this.identities.savePending({
      username: "",
      server: base,
      signaturePublic: mls.publicKey,
      signaturePrivate: mls.privateKey,
      loginPublic: login.publicKey,
      loginPrivate: login.privateKey,
      createdAt: this.opts.clock.now(),
    })
    const client = new ServerClient(base)
    let device: DeviceIdentity
    try {
      device = await linkDevice(client, code, login.publicKey, textSigner(login))
    } catch (err) {
      this.identities.deletePending()
      await client.close()
      throw err
    }
    return this.registered(device, client)
  }

  /** Registration or linking succeeded: the ids stored, the profile goes online. */
  private registered(device: DeviceIdentity, client: ServerClient, session?: Session): IdentityResult {
    this.identities.markRegistered(device, this.opts.clock.now())
    this.registration = {
      state: "registered",
      username: device.handle,
      attempts: 0,
      lastError: null,
      nextRetryAt: null,
    }
    this.opts.log.info({ ...device, server: client.baseUrl }, "registered")
    const id = this.identities.get()!
    this.goOnline(id, client, session ?? this.newSession(id, client))
    return this.identity()
  }

  /** `identity.linkCode`: a one-time code for a new device; this daemon then watches for that device to show up. */
  async linkCode(): Promise<IdentityLinkCodeResult> {
    const { session, devices } = this.requireOnline()
    const r = await session.call(deviceRoutes.createLinkCode, {})
    devices.watchLink(r.expiresAt)
    return r
  }

  /** `identity.devices`: the account's devices as the directory lists them now. */
  async devices(): Promise<IdentityDevicesResult> {
    const { devices, identity } = this.requireOnline()
    const account = await devices.devices()
    return {
      username: account.handle,
      userId: account.userId,
      devices: account.devices.map((d) => ({
        deviceId: d.deviceId,
        clientId: d.clientId,
        self: d.deviceId === identity.deviceId,
        signatureKey: d.mlsKey,
        createdAt: d.createdAt,
        removedAt: d.removedAt,
      })),
    }
  }

  /** `identity.removeDevice`: another device of this account removed on the server, then from this device's groups. */
  async removeDevice(deviceId: string): Promise<IdentityRemoveDeviceResult> {
    const { session, devices, identity } = this.requireOnline()
    if (deviceId === identity.deviceId)
      throw new AppError("invalid_request", "this is this device: remove it from another device of the account")
    const r = await session.call(deviceRoutes.removeDevice, { params: { deviceId } })
    devices.request()
    return r
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
    // A retry of an interrupted registration of the same name keeps its keys: the server may have them already.
    const reuse = pending && pending.username === username && pending.server === base
    if (!reuse) {
      const mls = newSignatureKeyPair()
      const login = newSignatureKeyPair()
      this.identities.savePending({
        username,
        server: base,
        signaturePublic: mls.publicKey,
        signaturePrivate: mls.privateKey,
        loginPublic: login.publicKey,
        loginPrivate: login.privateKey,
        createdAt: this.opts.clock.now(),
      })
    }
    const id = this.identities.get()!
    const login = this.loginKeysOf(id)
    const client = new ServerClient(base)
    const session = this.newSession(id, client)
    let device: DeviceIdentity
    try {
      device = await registerUser(session, login.publicKey, textSigner(login))
    } catch (err) {
      // Unreachable: keep the pending key and retry by itself. Refused: forget it.
      const unreachable = err instanceof AppError && err.code === "server_unreachable"
      if (!unreachable) this.identities.deletePending()
      await client.close()
      this.registrationFailed(err, unreachable ? base : undefined)
      throw err
    }
    return this.registered(device, client, session)
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
      userId: id.userId,
      deviceId: id.deviceId,
      clientId: id.clientId,
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
    clearTimeout(this.adoptRetry)
    const online = this.online
    this.online = undefined
    if (online) {
      clearInterval(online.deviceTimer)
      online.devices.close()
      online.groups.close()
      online.stream.stop()
      await online.maintainer.stop()
      await online.client.close().catch(() => undefined)
    }
    this.db.close()
  }
}
