/**
 * The daemon's JSON-RPC interface, declared once: the method registry the daemon serves and frontends call, the
 * notifications, and the OpenRPC document `rpc.discover` answers with.
 */
import type { Static, TSchema } from "@sinclair/typebox"
import { errorTable } from "../errors.js"
import * as daemon from "./daemon.js"
import * as debug from "./debug.js"
import * as events from "./events.js"
import * as group from "./group.js"
import * as identity from "./identity.js"
import type { MethodDescriptor, NotificationDescriptor } from "./method.js"
import {
  connectionChanged,
  credentialRefused,
  deviceAdded,
  groupHistoryLost,
  groupJoined,
  groupUpdated,
  inviteFailed,
  inviteReceived,
  invitesExpired,
  messageReceived,
  messageRefused,
  poolChanged,
  poolSuspicious,
} from "./notifications.js"
import * as message from "./message.js"
import * as pool from "./pool.js"
import * as rpc from "./rpc.js"
import * as settings from "./settings.js"

export * from "./method.js"
export { daemon, debug, events, group, identity, message, pool, rpc, settings }

/** Every method by name. */
export const methods = {
  [daemon.status.name]: daemon.status,
  [daemon.reconnect.name]: daemon.reconnect,
  [identity.get.name]: identity.get,
  [identity.register.name]: identity.register,
  [identity.link.name]: identity.link,
  [identity.linkCode.name]: identity.linkCode,
  [identity.devices.name]: identity.devices,
  [identity.removeDevice.name]: identity.removeDevice,
  [pool.status.name]: pool.status,
  [pool.list.name]: pool.list,
  [pool.refresh.name]: pool.refresh,
  [pool.usage.name]: pool.usage,
  [group.create.name]: group.create,
  [group.list.name]: group.list,
  [group.members.name]: group.members,
  [group.invite.name]: group.invite,
  [group.remove.name]: group.remove,
  [group.leave.name]: group.leave,
  [group.selfUpdate.name]: group.selfUpdate,
  [group.rejoin.name]: group.rejoin,
  [group.invites.name]: group.invites,
  [group.accept.name]: group.accept,
  [group.decline.name]: group.decline,
  [settings.get.name]: settings.get,
  [settings.set.name]: settings.set,
  [message.send.name]: message.send,
  [message.list.name]: message.list,
  [events.subscribe.name]: events.subscribe,
  [events.unsubscribe.name]: events.unsubscribe,
  [rpc.discover.name]: rpc.discover,
  [debug.setClock.name]: debug.setClock,
  [debug.advanceClock.name]: debug.advanceClock,
} as const
export type DaemonMethods = typeof methods
export type MethodName = keyof DaemonMethods
export type MethodParams<M extends MethodName> = Static<DaemonMethods[M]["params"]>
export type MethodResult<M extends MethodName> = Static<DaemonMethods[M]["result"]>

/** Every notification by name. */
export const notifications = {
  [poolChanged.name]: poolChanged,
  [connectionChanged.name]: connectionChanged,
  [messageReceived.name]: messageReceived,
  [messageRefused.name]: messageRefused,
  [groupJoined.name]: groupJoined,
  [groupUpdated.name]: groupUpdated,
  [inviteFailed.name]: inviteFailed,
  [inviteReceived.name]: inviteReceived,
  [credentialRefused.name]: credentialRefused,
  [deviceAdded.name]: deviceAdded,
  [groupHistoryLost.name]: groupHistoryLost,
  [invitesExpired.name]: invitesExpired,
  [poolSuspicious.name]: poolSuspicious,
} as const
export type DaemonNotifications = typeof notifications
export type NotificationName = keyof DaemonNotifications
export type NotificationParams<N extends NotificationName> = Static<DaemonNotifications[N]["params"]>

/** The methods a daemon serves: test-only ones only when asked for. */
export function servedMethods(includeTestOnly: boolean): MethodDescriptor[] {
  return Object.values(methods).filter((m: MethodDescriptor) => includeTestOnly || !m.testOnly)
}

/** A TypeBox schema as plain JSON Schema (TypeBox's symbol keys dropped). */
const plain = (s: TSchema): Record<string, unknown> => JSON.parse(JSON.stringify(s)) as Record<string, unknown>

const paramsOf = (d: MethodDescriptor | NotificationDescriptor) => {
  const required = new Set(d.params.required ?? [])
  return Object.entries(d.params.properties).map(([name, schema]) => ({
    name,
    required: required.has(name),
    ...(typeof schema.description === "string" && { description: schema.description }),
    schema: plain(schema),
  }))
}

/** The OpenRPC 1.x document of `served` (spec.open-rpc.org); notifications go under `x-notifications`. */
export function openRpcDocument(version: string, served: readonly MethodDescriptor[]): rpc.OpenRpcDocument {
  return {
    openrpc: "1.2.6",
    info: {
      title: "mlsd",
      version,
      description: "mls-chat daemon: JSON-RPC 2.0, newline-delimited, over a Unix socket",
    },
    methods: served.map((m) => ({
      name: m.name,
      summary: m.summary,
      description: m.description,
      paramStructure: "by-name",
      params: paramsOf(m),
      result: {
        name: "result",
        ...(typeof m.result.description === "string" && { description: m.result.description }),
        schema: plain(m.result),
      },
      errors: [...m.errors, "internal" as const].map((code) => ({
        code: errorTable[code].rpc,
        message: errorTable[code].doc,
        data: { code },
      })),
    })),
    "x-notifications": Object.values(notifications).map((n: NotificationDescriptor) => ({
      name: n.name,
      summary: n.summary,
      description: n.description,
      params: paramsOf(n),
    })),
  }
}
