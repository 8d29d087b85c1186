/**
 * Runs pool maintenance: reconciles with the server (status digest first, refs only on a mismatch), then executes
 * `plan` until nothing is left. Single-flight: one pass at a time; a request during a pass gets a fresh pass after
 * it. Triggered on start, by a timer, after reconnects and key-taking events (debounced), and by `pool.refresh`;
 * a failed pass is retried with exponential backoff and jitter. Never called in an RPC handler's critical path
 * except `pool.refresh`, which asks to wait.
 */
import type { Logger } from "pino"
import type { CiphersuiteImpl } from "ts-mls"
import { toBase64Url } from "../../rpc-schema/common.js"
import type { PoolStatusResult } from "../../rpc-schema/daemon/pool.js"
import { AppError } from "../../rpc-schema/errors.js"
import { keys as api } from "../../rpc-schema/server/index.js"
import { refsDigest } from "../../rpc-schema/server/http/keys.js"
import { backoffMs } from "../backoff.js"
import type { Clock } from "../clock.js"
import type { SignatureKeyPair } from "../mls/identity.js"
import { generateKeyPackage } from "../mls/keyPackages.js"
import type { LocalKey, PoolStore, StatePatch } from "../store/poolStore.js"
import type { Session } from "../sync/session.js"
import { targetInForce } from "./demand.js"
import { plan, type Action, type ServerView } from "./plan.js"
import type { MaintenancePolicy } from "./policy.js"
import { figures, heldRefs } from "./status.js"
import type { KeyUsage } from "./usage.js"

export interface MaintainerDeps {
  pool: PoolStore
  session: Session
  /** The account's handle: the owner routes name it (they act on the pool of the session's device). */
  username: string
  /** This device's client id: the identity its KeyPackages carry. */
  clientId: string
  keys: SignatureKeyPair
  suite: () => Promise<CiphersuiteImpl>
  clock: Clock
  policy: MaintenancePolicy
  /** The measured demand the adaptive target follows. */
  usage: KeyUsage
  log: Logger
  /** Called after every pass, successful or not. */
  onPass: () => void
}

interface Counters {
  generated: number
  uploaded: number
  withdrawn: number
}

const maxRounds = 4
const uploadBatch = 64

export class PoolMaintainer {
  private requested = 0
  private loop: Promise<void> | undefined
  private waiters: { ticket: number; resolve: () => void }[] = []
  private soonTimer: NodeJS.Timeout | undefined
  private retryTimer: NodeJS.Timeout | undefined
  private readonly interval: NodeJS.Timeout
  private stopped = false
  private passing = false

  private lastPass: PoolStatusResult["lastPass"] = null
  private lastError: PoolStatusResult["lastError"] = null
  private failures = 0
  private nextRetryAt: number | null = null
  private synced = false

  constructor(private readonly d: MaintainerDeps) {
    this.interval = setInterval(() => void this.request(), d.policy.maintenanceIntervalMs).unref()
  }

  /** Asks for a pass; resolves when a pass that started after this call has ended (whatever its outcome). */
  request(): Promise<void> {
    if (this.stopped) return Promise.resolve()
    const ticket = ++this.requested
    const done = new Promise<void>((resolve) => this.waiters.push({ ticket, resolve }))
    this.loop ??= this.run().finally(() => (this.loop = undefined))
    return done
  }

  /** A pass within `eventDelayMs`, after an event that took a key from the pool; bursts share one pass. */
  soon(): void {
    if (this.soonTimer || this.stopped) return
    this.soonTimer = setTimeout(() => {
      this.soonTimer = undefined
      void this.request()
    }, this.d.policy.eventDelayMs).unref()
  }

  /** Stops the timers and waits (up to `waitMs`) for a running pass. */
  async stop(waitMs = 2000): Promise<void> {
    this.stopped = true
    clearInterval(this.interval)
    clearTimeout(this.soonTimer)
    clearTimeout(this.retryTimer)
    if (this.loop) await Promise.race([this.loop, new Promise((r) => setTimeout(r, waitMs).unref())])
  }

  status(): PoolStatusResult {
    const now = this.d.clock.now()
    const f = figures(this.d.pool.keys(), now, this.d.policy.lowWatermark)
    const { target, lowWatermark, cap, lifetimeMs, rotateBeforeMs, graceMs, lastResort, maintenanceIntervalMs } =
      this.d.policy
    const { adaptive, suspiciousLapses } = this.d.policy
    return {
      ...f,
      health: this.lastError ? "degraded" : f.health,
      lastUpload: this.d.pool.lastUpload(),
      synced: this.synced,
      running: this.passing,
      lastPass: this.lastPass,
      lastError: this.lastError,
      consecutiveFailures: this.failures,
      nextRetryAt: this.nextRetryAt,
      policy: {
        ...{ target, lowWatermark, cap, lifetimeMs, rotateBeforeMs, graceMs, lastResort, maintenanceIntervalMs },
        ...{ adaptive, suspiciousLapses },
      },
      demand: this.demand(),
    }
  }

  private demand() {
    return targetInForce(this.d.policy, this.d.usage.measured())
  }

  private async run(): Promise<void> {
    while (!this.stopped && this.waiters.length > 0) {
      const upTo = this.requested
      await this.pass()
      const done = this.waiters.filter((w) => w.ticket <= upTo)
      this.waiters = this.waiters.filter((w) => w.ticket > upTo)
      done.forEach((w) => w.resolve())
    }
    // Stopped with waiters left: release them.
    this.waiters.splice(0).forEach((w) => w.resolve())
  }

  private async pass(): Promise<void> {
    const startedAt = this.d.clock.now()
    const c: Counters = { generated: 0, uploaded: 0, withdrawn: 0 }
    let ok = true
    this.passing = true
    // The claims since the previous pass are a burst this pass refills after: measured before sizing the target.
    this.d.usage.endBurst()
    try {
      await this.reconcile(c)
      this.lastError = null
      this.failures = 0
      this.nextRetryAt = null
      clearTimeout(this.retryTimer)
    } catch (err) {
      ok = false
      this.fail(err)
    }
    this.passing = false
    this.lastPass = { startedAt, finishedAt: this.d.clock.now(), ok, ...c }
    this.d.log.debug({ ...this.lastPass }, "pool maintenance pass")
    if (!this.stopped) this.d.onPass()
  }

  private fail(err: unknown): void {
    const e = err instanceof AppError ? err : new AppError("internal", (err as Error)?.message ?? String(err))
    if (!(err instanceof AppError)) this.d.log.error({ err }, "pool maintenance failed")
    else this.d.log.warn({ code: e.code, msg: e.message }, "pool maintenance failed")
    this.failures++
    this.lastError = { code: e.code, message: e.message, at: this.d.clock.now() }
    const delay = backoffMs(this.failures, this.d.policy.retryBaseMs, this.d.policy.retryMaxMs)
    this.nextRetryAt = this.d.clock.now() + delay
    clearTimeout(this.retryTimer)
    if (!this.stopped) this.retryTimer = setTimeout(() => void this.request(), delay).unref()
  }

  private async reconcile(c: Counters): Promise<void> {
    const { pool, session, username } = this.d
    const params = { username }
    const now = this.d.clock.now()
    const status = await session.call(api.status, { params })
    const local = pool.keys()
    const localLastResort = local.find((k) => k.lastResort && k.state === "available" && k.notAfter > now)
    let view: ServerView | undefined
    if (
      status.digest !== refsDigest(heldRefs(local, now)) ||
      (status.lastResort?.ref ?? null) !== (localLastResort?.ref ?? null) ||
      local.some((k) => k.state === "created")
    ) {
      const refs = await session.call(api.refs, { params })
      view = {
        available: new Set(refs.available),
        reserved: new Set(refs.reserved),
        lastResortRef: status.lastResort?.ref ?? null,
      }
    }
    // Requests already made in this pass are not repeated in a later round (e.g. a withdrawal of a reserved key).
    const tried = new Set<string>()
    const policy = { ...this.d.policy, target: this.demand().target }
    for (let round = 0; round < maxRounds; round++) {
      const actions = plan({ keys: pool.keys(), server: view }, this.d.clock.now(), policy).filter(
        (a) => !(a.kind === "withdraw" && tried.has(a.ref)) && !(a.kind === "uploadLastResort" && tried.has(a.ref)),
      )
      if (actions.length === 0) break
      await this.execute(actions, view, tried, c)
    }
    const after = await session.call(api.status, { params })
    this.synced = after.digest === refsDigest(heldRefs(pool.keys(), this.d.clock.now()))
  }

  private async execute(actions: Action[], view: ServerView | undefined, tried: Set<string>, c: Counters) {
    const { pool } = this.d
    const byRef = new Map(pool.keys().map((k) => [k.ref, k]))
    const uploads: string[] = []
    for (const a of actions) {
      switch (a.kind) {
        case "purge":
          pool.purge(a.refs)
          this.d.log.info({ count: a.refs.length }, "purged keys past not_after plus grace")
          break
        case "mark": {
          const k = byRef.get(a.ref)
          if (k) pool.update([[a.ref, this.patch(k, a.state)]])
          this.d.log.debug({ ref: a.ref, state: a.state, why: a.why }, "key state corrected")
          break
        }
        case "withdraw":
          tried.add(a.ref)
          await this.withdraw(a.ref, byRef.get(a.ref), view)
          c.withdrawn++
          break
        case "generate": {
          const fresh = await this.generate(a.count, false)
          c.generated += fresh.length
          uploads.push(...fresh)
          break
        }
        case "upload":
          uploads.push(...a.refs)
          break
        case "generateLastResort": {
          const [ref] = await this.generate(1, true)
          c.generated++
          tried.add(ref!)
          await this.uploadLastResort(ref!, view)
          break
        }
        case "uploadLastResort":
          tried.add(a.ref)
          await this.uploadLastResort(a.ref, view)
          break
      }
    }
    for (let i = 0; i < uploads.length; i += uploadBatch) {
      c.uploaded += await this.upload(uploads.slice(i, i + uploadBatch), view)
    }
  }

  private patch(k: LocalKey, state: LocalKey["state"]): StatePatch {
    const now = this.d.clock.now()
    const p: StatePatch = { state }
    if (state === "available" && k.uploadedAt === null) p.uploadedAt = now
    if (state === "available") Object.assign(p, { reservedAt: null, reservedBy: null })
    if (state === "reserved" && k.state !== "reserved") p.reservedAt = now
    if (state === "spent") p.spentAt = now
    return p
  }

  private async generate(count: number, lastResort: boolean): Promise<string[]> {
    const suite = await this.d.suite()
    const now = this.d.clock.now()
    const fresh = []
    for (let i = 0; i < count; i++) {
      fresh.push(
        await generateKeyPackage({
          identity: this.d.clientId,
          keys: this.d.keys,
          suite,
          now,
          lifetimeMs: this.d.policy.lifetimeMs,
          lastResort,
        }),
      )
    }
    // Persisted before anything is sent: a crash after the upload still finds the private parts.
    this.d.pool.insert(fresh)
    return fresh.map((k) => k.ref)
  }

  private async withdraw(ref: string, k: LocalKey | undefined, view: ServerView | undefined): Promise<void> {
    let outcome: "gone" | "spent" | "reserved" = "gone"
    try {
      await this.d.session.call(api.withdraw, { params: { username: this.d.username, ref } })
    } catch (err) {
      if (!(err instanceof AppError)) throw err
      if (err.code === "already_spent") outcome = "spent"
      else if (err.code === "keypackage_reserved") outcome = "reserved"
      else if (err.code !== "keypackage_not_found") throw err
    }
    view?.available.delete(ref)
    view?.reserved.delete(ref)
    if (outcome === "reserved") view?.reserved.add(ref)
    if (k && ["created", "available", "reserved", "spent"].includes(k.state)) {
      // A withdrawn key was never reserved by anyone who could commit with it; its private part is still kept
      // until not_after plus the grace period, like every other key.
      const state = outcome === "gone" ? "expired" : outcome
      this.d.pool.update([[ref, this.patch(k, state)]])
    }
    this.d.log.debug({ ref, outcome }, "withdrew key")
  }

  private async upload(refs: string[], view: ServerView | undefined): Promise<number> {
    const data = this.d.pool.publicData(refs)
    const present = refs.filter((r) => data.has(r))
    if (present.length === 0) return 0
    const now = this.d.clock.now()
    let results
    try {
      results = (
        await this.d.session.call(api.upload, {
          params: { username: this.d.username },
          body: { keyPackages: present.map((r) => toBase64Url(data.get(r)!)) },
        })
      ).results
    } catch (err) {
      // The keys stay `created`; the next pass asks the server which of them arrived before uploading again.
      this.d.pool.attemptFailed(present, (err as Error).message, now)
      throw err
    }
    const accepted: [string, StatePatch][] = []
    const rejected: [string, string][] = []
    const spent: [string, StatePatch][] = []
    for (const r of results) {
      const ref = present[r.index]
      if (ref === undefined) continue
      if (r.status === "rejected") {
        if (r.reason === "cap_exceeded") {
          const attempts = this.d.pool.list("created", 1000).find((k) => k.ref === ref)?.attempts ?? 0
          const delay = backoffMs(attempts + 1, this.d.policy.retryBaseMs, this.d.policy.retryMaxMs)
          this.d.pool.attemptFailed([ref], r.message, now + delay)
        } else if (r.reason === "init_key_reused") {
          // Uploaded before (a lost answer) and since spent and collected: someone may add us with it.
          spent.push([ref, { state: "spent", spentAt: now, lastError: r.message }])
        } else rejected.push([ref, `${r.reason}: ${r.message}`])
      } else if (r.ref !== ref) {
        rejected.push([ref, `the server computed another KeyPackageRef (${r.ref})`])
      } else {
        accepted.push([ref, { state: "available", uploadedAt: now, lastError: null }])
        view?.available.add(ref)
      }
    }
    this.d.pool.update([...accepted, ...spent])
    this.d.pool.reject(rejected)
    if (rejected.length > 0) this.d.log.warn({ rejected }, "server rejected KeyPackages")
    return accepted.length
  }

  private async uploadLastResort(ref: string, view: ServerView | undefined): Promise<void> {
    const data = this.d.pool.publicData([ref]).get(ref)
    if (!data) return
    const now = this.d.clock.now()
    let r
    try {
      r = await this.d.session.call(api.putLastResort, {
        params: { username: this.d.username },
        body: { keyPackage: toBase64Url(data) },
      })
    } catch (err) {
      this.d.pool.attemptFailed([ref], (err as Error).message, now)
      throw err
    }
    if (r.status === "rejected") {
      this.d.pool.reject([[ref, `${r.reason}: ${r.message}`]])
      return
    }
    const retired = this.d.pool
      .keys()
      .filter((k) => k.lastResort && k.state === "available" && k.ref !== ref)
      .map((k): [string, StatePatch] => [k.ref, { state: "expired" }])
    this.d.pool.update([[ref, { state: "available", uploadedAt: now, lastError: null }], ...retired])
    if (view) view.lastResortRef = ref
  }
}
