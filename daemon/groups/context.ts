/** What every part of the group service shares: the stores, the server session, the identity, the MLS suite. */
import type { Logger } from "pino"
import type { CiphersuiteImpl } from "ts-mls"
import { AppError } from "../../rpc-schema/errors.js"
import type { Clock } from "../clock.js"
import type { EventBus } from "../events.js"
import { GroupError } from "../mls/groupError.js"
import type { SignatureKeyPair } from "../mls/identity.js"
import type { Db } from "../store/database.js"
import type { GroupStore } from "../store/groupStore.js"
import type { InvitationStore } from "../store/invitationStore.js"
import type { OutboxStore } from "../store/outboxStore.js"
import type { PoolStore } from "../store/poolStore.js"
import type { SettingsStore } from "../store/settingsStore.js"
import type { Session } from "../sync/session.js"
import type { Directory } from "./directory.js"

export interface GroupContext {
  db: Db
  groups: GroupStore
  outbox: OutboxStore
  pool: PoolStore
  /** Pending invitations (`invites = ask`). */
  invitations: InvitationStore
  settings: SettingsStore
  events: EventBus
  clock: Clock
  log: Logger
  session: Session
  /** This account's handle. */
  username: string
  /** This account's user id, this device's id and its client id (its credentials' identity, its roster entry). */
  userId: string
  deviceId: string
  clientId: string
  /** The same arrays on every call: the crypto provider caches the signing key by array identity. */
  keys: SignatureKeyPair
  suite: () => Promise<CiphersuiteImpl>
  directory: Directory
}

/** A GroupError of the MLS layer as the AppError an RPC caller gets. */
export function toAppError(err: unknown): unknown {
  if (err instanceof GroupError) return new AppError(err.rpcCode, err.message, err.details && { ...err.details })
  return err
}
