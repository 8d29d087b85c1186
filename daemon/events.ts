/**
 * Notifications: recorded durably with an id (EventStore), then handed to the connections listening once committed.
 * `emit` is usually called inside the transaction that makes the change it reports; listeners must not hear of a
 * change that then rolls back, nor ask the database about one it has not committed yet. So listeners are fed from
 * the store after the current synchronous work, with what the store really holds.
 */
import type { Logger } from "pino"
import type { NotificationName, NotificationParams } from "../rpc-schema/daemon/index.js"
import type { Clock } from "./clock.js"
import type { EventStore, StoredEvent } from "./store/eventStore.js"

export type EventListener = (e: StoredEvent) => void

export class EventBus {
  private readonly listeners = new Set<EventListener>()
  /** The last event handed to the listeners. */
  private delivered: number
  private deliveryQueued = false

  constructor(
    readonly store: EventStore,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {
    this.delivered = store.lastId()
  }

  emit<N extends NotificationName>(name: N, params: Omit<NotificationParams<N>, "eventId">): void {
    this.store.append(name, params, this.clock.now())
    if (!this.deliveryQueued) {
      this.deliveryQueued = true
      queueMicrotask(() => this.deliver())
    }
  }

  /** Recorded events after `id`, with their ids filled in, for a subscriber catching up (all names if omitted). */
  since(id: number, names?: readonly string[]): StoredEvent[] {
    return this.store.since(id, names).map((e) => ({ ...e, params: { eventId: e.id, ...e.params } }))
  }

  /**
   * Hands the committed events not yet delivered to the listeners. better-sqlite3 transactions are synchronous, so a
   * microtask runs after the emitting transaction has committed or rolled back; a rolled-back event is simply not
   * in the store.
   */
  private deliver(): void {
    this.deliveryQueued = false
    for (const e of this.since(this.delivered)) {
      this.delivered = e.id
      // One failing listener (a connection going away) must not keep the event from the others.
      for (const l of this.listeners) {
        try {
          l(e)
        } catch (err) {
          this.log.error({ err, event: e.name, eventId: e.id }, "notification listener failed")
        }
      }
    }
  }

  on(l: EventListener): () => void {
    this.listeners.add(l)
    return () => this.listeners.delete(l)
  }
}
