/** Builds the server: store, services and HTTP routes, from one config. main.ts and tests both use it. */
import Fastify, { LogController, type FastifyInstance } from "fastify"
import { AppError } from "../rpc-schema/errors.js"
import type { ServerConfig } from "./config.js"
import { errorHandler, sendError } from "./errors.js"
import { authRoutes } from "./routes/auth.js"
import { keyRoutes } from "./routes/keys.js"
import { AuthService } from "./services/auth.js"
import { DirectoryService } from "./services/directory.js"
import { DirectoryEvents } from "./services/events.js"
import { SqliteStore } from "./store/sqliteStore.js"

/** Largest accepted request body. */
export const bodyLimit = 1024 * 1024

export interface ServerApp {
  http: FastifyInstance
  store: SqliteStore
  auth: AuthService
  directory: DirectoryService
  events: DirectoryEvents
  /** Stops accepting requests, finishes the ones in flight, closes the database. */
  close(): Promise<void>
}

export async function buildApp(config: ServerConfig): Promise<ServerApp> {
  const store = new SqliteStore(config.dbPath)
  const events = new DirectoryEvents()
  const auth = new AuthService(store, config.clock, { session: config.sessionTtlMs, challenge: config.challengeTtlMs })
  const directory = new DirectoryService(store, config.clock, events, config)

  const http = Fastify({
    bodyLimit,
    logController: new LogController({ disableRequestLogging: !["debug", "trace"].includes(config.logLevel) }),
    logger: {
      level: config.logLevel,
      // Tokens and key material never reach the log; request bodies are never logged at all.
      redact: ["req.headers.authorization", "*.token", "*.nonce", "*.signature", "*.proof"],
    },
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false } },
  })
  http.decorateRequest("user", "")
  http.removeContentTypeParser("text/plain") // JSON only: anything else is 415
  http.setErrorHandler(errorHandler)
  http.setNotFoundHandler((request, reply) =>
    sendError(reply, new AppError("not_found", `no route ${request.method} ${request.url.split("?")[0]}`)),
  )
  authRoutes(http, auth)
  keyRoutes(http, auth, directory)

  const gc =
    config.gcIntervalMs > 0
      ? setInterval(() => {
          directory.collectGarbage().catch((err: unknown) => http.log.error({ err }, "garbage collection failed"))
        }, config.gcIntervalMs).unref()
      : undefined

  return {
    http,
    store,
    auth,
    directory,
    events,
    async close() {
      clearInterval(gc)
      await http.close()
      store.close()
    },
  }
}
