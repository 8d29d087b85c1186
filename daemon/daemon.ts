/**
 * The daemon's core, one per profile: the store, the identity, the server session, pool maintenance and the
 * event bus. The RPC handlers call into it; main.ts builds it and tears it down.
 */
import type { Logger } from "pino"
import type { CiphersuiteImpl } from "ts-mls"
import { getSuite } from "../crypto/index.js"
import { toBase64Url } from "../rpc-schema/common.js"
import type { ConnectionState, DaemonStatusResult } from "../rpc-schema/daemon/daemon.js"
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
import { Directory } from "./groups/directory.js"
import { GroupService } from "./groups/groupService.js"

export interface DaemonOptions {
  version: string
  profile: string
  dataDir: string
  dbPath: string
  socketPath: string
  /** Default server for registration (`--server`). */
  server: string | undefined
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
  readonly startedAt: number
  private readonly startedPerf = performance.now()
  private online: Online | undefined
  private connection: ConnectionState = "offline"
  private registering = false

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
    this.startedAt = opts.clock.now()
  }

  /** Goes online when the profile is registered: session, first maintenance pass. */
  start(): void {
    const id = this.identities.get()
    if (id?.registeredAt != null) this.goOnline(id, new ServerClient(id.server))
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
        const active = this.online?.groups.list().filter((g) => g.status !== "removed") ?? []
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
      onInboxExpired: (report) => {
        if (recordInboxExpiry(this.db, this.cursors, this.events, report, this.opts.clock.now())) {
          this.opts.log.warn(report, "inbox items expired on the server unread")
          // Lost key-directory events (reservations, spends) are repaired by reconciling with the server.
          maintainer.soon()
        }
      },
      groupCursors: () => groups.cursors(),
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

  async register(username: string, server: string | undefined): Promise<IdentityResult> {
    if (this.online || this.identities.get()?.registeredAt != null) {
      throw new AppError("already_registered", `profile ${this.opts.profile} is registered already`)
    }
    if (this.registering) throw new AppError("conflict", "a registration is in progress")
    const base = (server ?? this.opts.server)?.replace(/\/$/, "")
    if (!base) throw new AppError("invalid_request", "no server: pass `server` or start the daemon with --server")
    this.registering = true
    try {
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
        // Unreachable: keep the pending key for a retry. Refused: forget it.
        if (!(err instanceof AppError && err.code === "server_unreachable")) this.identities.deletePending()
        await client.close()
        throw err
      }
      this.identities.markRegistered(this.opts.clock.now())
      this.opts.log.info({ username, server: base }, "registered")
      this.goOnline(this.identities.get()!, client, session)
      return this.identity()
    } finally {
      this.registering = false
    }
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
      startedAt: this.startedAt,
      // Real elapsed time, independent of a test clock.
      uptimeMs: Math.round(performance.now() - this.startedPerf),
      now,
      dataDir: this.opts.dataDir,
      socketPath: this.opts.socketPath,
    }
  }

  async close(): Promise<void> {
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
