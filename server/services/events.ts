/**
 * Key-directory events raised inside the server, after the change is committed. The delivery
 * service forwards them to the key owner's stream. Owners and actors are device ids.
 */
import { EventEmitter } from "node:events"

export interface DirectoryEventMap {
  /** One of `owner`'s KeyPackages was reserved by `by`. */
  reserved: [{ owner: string; ref: string; by: string; lastResort: boolean; remainingAvailable: number }]
  /** One of `owner`'s KeyPackages was spent by `by`. */
  spent: [{ owner: string; ref: string; by: string; lastResort: boolean }]
  /** A reservation `by` made of one of `owner`'s KeyPackages lapsed unused. */
  released: [{ owner: string; ref: string; by: string }]
  /** `owner` has fewer than the low watermark of ordinary keys available. */
  poolLow: [{ owner: string; available: number }]
}

export class DirectoryEvents extends EventEmitter<DirectoryEventMap> {}
