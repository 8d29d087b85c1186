/**
 * The sender loop of the outbox (DESIGN §3: "a crash never loses or doubles a send"). message.send stores the
 * encrypted message and the state that encrypted it in one transaction; this loop posts the outbox in order, up to
 * 64 entries of one group per request (the server's batch route, all or nothing), each carrying its clientId, and
 * removes entries in the transaction that stores them in the history with the server's seq. After a crash the
 * outbox is posted again: the server answers a repeated clientId with the seq it gave the first time and stores
 * nothing, so a message lands once whichever step the crash interrupted.
 *
 * One run at a time; a run stops at the first passing failure (server unreachable, rate limited) and is retried with
 * backoff, or at once when the stream comes back. A refusal that cannot pass (removed from the group, a message the
 * server will never take) drops that entry: its waiter gets the error; when nobody waits (an entry recovered after a
 * restart, or one whose send was answered `queued`), `message.refused` tells the frontends.
 */
import type { Logger } from "pino"
import { toBase64Url } from "../../rpc-schema/common.js"
import type { StoredMessage } from "../../rpc-schema/daemon/message.js"
import { AppError, type ErrorCode } from "../../rpc-schema/errors.js"
import { groups as routes } from "../../rpc-schema/server/index.js"
import { maxBatchSize } from "../../rpc-schema/server/http/groups.js"
import { backoffMs } from "../backoff.js"
import type { Clock } from "../clock.js"
import type { EventBus } from "../events.js"
import type { Db } from "../store/database.js"
import type { GroupStore } from "../store/groupStore.js"
import type { OutboxEntry, OutboxStore } from "../store/outboxStore.js"
import type { Session } from "../sync/session.js"

export type SendOutcome =
  { kind: "sent"; message: StoredMessage } | { kind: "queued"; error: string } | { kind: "failed"; error: AppError }

/** Refusals a retry cannot change: the entry is dropped. */
const permanent: readonly ErrorCode[] = [
  "not_member",
  "group_not_found",
  "malformed_message",
  "message_too_large",
  "epoch_conflict",
  "invalid_request",
]

/** How many entries one run reads at a time; their history rows are written in one transaction. */
const batchSize = maxBatchSize
const minBackoffMs = 1000
const maxBackoffMs = 30_000
/** Base64url characters one batch post carries at most, well under the server's 1 MiB request body. */
const maxChunkChars = 512 * 1024

type Done = { entry: OutboxEntry; seq?: number; error?: AppError }

const asAppError = (err: unknown): AppError =>
  err instanceof AppError ? err : new AppError("internal", (err as Error).message)

/** Splits entries (in outbox order) into runs of one group, each small enough for one batch post. */
function chunks(entries: OutboxEntry[]): OutboxEntry[][] {
  const out: OutboxEntry[][] = []
  let chars = 0
  for (const e of entries) {
    const size = Math.ceil((e.message.length * 4) / 3) + 64
    const last = out.at(-1)
    if (last && last[0]!.groupId === e.groupId && chars + size <= maxChunkChars) {
      last.push(e)
      chars += size
    } else {
      out.push([e])
      chars = size
    }
  }
  return out
}

export interface OutboxSenderOptions {
  db: Db
  outbox: OutboxStore
  groups: GroupStore
  session: Session
  clock: Clock
  events: EventBus
  log: Logger
  /** This account's handle and this device's id: the sender of own messages. */
  username: string
  deviceId: string
}

export class OutboxSender {
  private running: Promise<void> | undefined
  /** A kick during a run: run once more, since the run may have read the outbox before the new entry. */
  private again = false
  private readonly waiters = new Map<number, (o: SendOutcome) => void>()
  private lastError: AppError | undefined
  /** Passing failures in a row: the backoff. */
  private failures = 0
  private timer: NodeJS.Timeout | undefined
  private stopped = false

  constructor(private readonly o: OutboxSenderOptions) {}

  /** Resolves once entry `id` was sent, stays queued after a passing failure, or was refused. */
  wait(id: number): Promise<SendOutcome> {
    return new Promise((resolve) => this.waiters.set(id, resolve))
  }

  /** Starts a run unless one is going (a running one picks up new entries before it ends). */
  kick(): void {
    if (this.stopped) return
    if (this.running) {
      this.again = true
      return
    }
    clearTimeout(this.timer)
    this.timer = undefined
    this.again = false
    this.running = this.run().finally(() => {
      this.running = undefined
      if (this.again && this.lastError === undefined) this.kick()
    })
  }

  /** The link is back: retry now, with the backoff reset. */
  online(): void {
    this.failures = 0
    this.kick()
  }

  /** Posts every queued entry of `groupId` (before a Commit moves the epoch); throws when it cannot. */
  async flush(groupId: string): Promise<void> {
    while (this.o.outbox.count(groupId) > 0) {
      if (this.stopped) throw new AppError("server_unreachable", "the daemon is stopping")
      this.kick()
      await this.running
      if (this.lastError && this.o.outbox.count(groupId) > 0) throw this.lastError
    }
  }

  stop(): void {
    this.stopped = true
    clearTimeout(this.timer)
  }

  private async run(): Promise<void> {
    this.lastError = undefined
    let after = 0
    for (;;) {
      const batch = this.o.outbox.next(after, batchSize)
      if (batch.length === 0 || this.stopped) break
      const done: Done[] = []
      let stop: AppError | undefined
      for (const chunk of chunks(batch)) {
        stop = await this.post(chunk, done)
        if (stop) break
        after = chunk.at(-1)!.id
      }
      if (this.stopped) return
      this.settle(done)
      if (stop) return this.pause(stop)
    }
    this.failures = 0
  }

  /**
   * Posts one chunk (consecutive entries of one group) with the batch route, in order; the server stores all or
   * none. When it refuses the chunk for good, its entries are posted one at a time, so only the bad one is dropped.
   * Answers the passing failure that stops the run, if any.
   */
  private async post(chunk: OutboxEntry[], done: Done[]): Promise<AppError | undefined> {
    const g = this.o.groups.get(chunk[0]!.groupId)
    if (g?.status === "out_of_sync") {
      // Encrypted at an epoch the group has left (a lost Commit): nobody could read them. Refused here, not posted.
      const error = new AppError(
        "group_out_of_sync",
        `group "${g.name}" is out of sync (history lost): the message was not sent`,
        { groupId: g.id },
      )
      for (const entry of chunk) done.push({ entry, error })
      return undefined
    }
    if (chunk.length > 1) {
      try {
        const r = await this.o.session.call(routes.postMessages, {
          params: { groupId: chunk[0]!.groupId },
          body: {
            messages: chunk.map((e) => ({ message: toBase64Url(e.message), clientId: toBase64Url(e.clientId) })),
          },
        })
        chunk.forEach((entry, i) => done.push({ entry, seq: r.results[i]!.seq }))
        return undefined
      } catch (err) {
        const e = asAppError(err)
        // not_found: a server without the batch route; the single route does the same, one entry at a time.
        if (!permanent.includes(e.code) && e.code !== "not_found") return e
      }
    }
    for (const entry of chunk) {
      try {
        const r = await this.o.session.call(routes.postMessage, {
          params: { groupId: entry.groupId },
          body: { message: toBase64Url(entry.message), clientId: toBase64Url(entry.clientId) },
        })
        done.push({ entry, seq: r.seq })
      } catch (err) {
        const e = asAppError(err)
        if (!permanent.includes(e.code)) return e
        done.push({ entry, error: e })
      }
    }
    return undefined
  }

  /**
   * One transaction for a batch: sent entries go from the outbox into the history, refused ones are dropped (and
   * reported in the same transaction when no call waits for them, so a crash cannot lose the report).
   */
  private settle(done: Done[]): void {
    const now = this.o.clock.now()
    const outcomes: [number, SendOutcome][] = []
    this.o.db.transaction(() => {
      for (const { entry, seq, error } of done) {
        this.o.outbox.remove(entry.id)
        if (seq === undefined) {
          this.o.log.warn({ groupId: entry.groupId, code: error?.code }, "queued message refused by the server")
          outcomes.push([entry.id, { kind: "failed", error: error! }])
          if (!this.waiters.has(entry.id))
            this.o.events.emit("message.refused", {
              groupId: entry.groupId,
              // The outbox row references its group (foreign key): the group is there.
              group: this.o.groups.get(entry.groupId)!.name,
              clientId: toBase64Url(entry.clientId),
              text: entry.text,
              createdAt: entry.createdAt,
              code: error!.code,
              message: error!.message,
            })
          continue
        }
        const message: StoredMessage = {
          groupId: entry.groupId,
          seq,
          sender: this.o.username,
          senderDevice: this.o.deviceId,
          text: entry.text,
          sentAt: entry.createdAt,
          receivedAt: now,
          own: true,
        }
        this.o.groups.addMessage(message)
        outcomes.push([entry.id, { kind: "sent", message }])
      }
    })()
    for (const [id, outcome] of outcomes) {
      this.waiters.get(id)?.(outcome)
      this.waiters.delete(id)
    }
  }

  /** A passing failure: whoever waits learns the message is queued; the run is tried again later. */
  private pause(err: AppError): void {
    this.lastError = err
    for (const resolve of this.waiters.values()) resolve({ kind: "queued", error: err.message })
    this.waiters.clear()
    const retryAfterS = Number(err.details?.retryAfterS)
    this.failures++
    const delay = Number.isFinite(retryAfterS)
      ? retryAfterS * 1000
      : backoffMs(this.failures, minBackoffMs, maxBackoffMs)
    this.o.log.info({ err: err.message, retryInMs: Math.round(delay) }, "outbox paused")
    this.timer = setTimeout(() => this.kick(), delay)
    this.timer.unref()
  }
}
