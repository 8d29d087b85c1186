/** Every handler, one file per noun, keyed by method name (the type makes the registry and handlers agree). */
import type { Handlers } from "../dispatch.js"
import type { HandlerContext } from "./context.js"
import { daemonHandlers } from "./daemon.js"
import { debugHandlers } from "./debug.js"
import { eventHandlers } from "./events.js"
import { groupHandlers } from "./group.js"
import { identityHandlers } from "./identity.js"
import { messageHandlers } from "./message.js"
import { poolHandlers } from "./pool.js"
import { rpcHandlers } from "./rpc.js"
import { settingsHandlers } from "./settings.js"

export type { HandlerContext } from "./context.js"

export function handlers(
  ctx: HandlerContext,
): Omit<Handlers, "debug.setClock" | "debug.advanceClock"> & Partial<Handlers> {
  return {
    ...daemonHandlers(ctx),
    ...identityHandlers(ctx),
    ...poolHandlers(ctx),
    ...groupHandlers(ctx),
    ...messageHandlers(ctx),
    ...eventHandlers(ctx),
    ...rpcHandlers(ctx),
    ...settingsHandlers(ctx),
    ...debugHandlers(ctx),
  }
}
