/** Notifications: recorded durably with an id (EventStore), then handed to the connections listening. */
import type { NotificationName, NotificationParams } from "../rpc-schema/daemon/index.js"
import type { Clock } from "./clock.js"
import type { EventStore, StoredEvent } from "./store/eventStore.js"

export type EventListener = (e: StoredEvent) => void

export class EventBus {
  private readonly listeners = new Set<EventListener>()

  constructor(
    readonly store: EventStore,
    private readonly clock: Clock,
  ) {}

  emit<N extends NotificationName>(name: N, params: Omit<NotificationParams<N>, "eventId">): void {
    const id = this.store.append(name, params, this.clock.now())
    const e = { id, name, params: { eventId: id, ...params } }
    for (const l of this.listeners) l(e)
  }

  /** Recorded events after `id`, with their ids filled in, for a subscriber catching up. */
  since(id: number, names: readonly string[]): StoredEvent[] {
    return this.store.since(id, names).map((e) => ({ ...e, params: { eventId: e.id, ...e.params } }))
  }

  on(l: EventListener): () => void {
    this.listeners.add(l)
    return () => this.listeners.delete(l)
  }
}
