/** Builds the server: store, services and HTTP routes, from one config. main.ts and tests both use it. */
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from "fastify"
import { logDestination } from "../logging/logging.js"
import { AppError } from "../rpc-schema/errors.js"
import type { ServerConfig } from "./config.js"
import { errorHandler, sendError } from "./errors.js"
import { authRoutes } from "./routes/auth.js"
import { deliveryRoutes } from "./routes/groups.js"
import { keyRoutes } from "./routes/keys.js"
import { AuthService } from "./services/auth.js"
import { DeliveryService } from "./services/delivery.js"
import { DeviceService } from "./services/devices.js"
import { DirectoryService } from "./services/directory.js"
import { DirectoryEvents } from "./services/events.js"
import { isPostgresUrl } from "./store/postgres/database.js"
import { DoorbellListener, type Ring } from "./store/postgres/doorbell.js"
import { PgDeliveryStore } from "./store/postgres/pgDeliveryStore.js"
import { PgStore } from "./store/postgres/pgStore.js"
import { SqliteDeliveryStore } from "./store/sqliteDeliveryStore.js"
import { SqliteStore } from "./store/sqliteStore.js"
import { StreamHub } from "./ws/hub.js"
import { attachStream } from "./ws/stream.js"

/** Largest accepted request body. */
export const bodyLimit = 1024 * 1024

export interface ServerApp {
  http: FastifyInstance
  /** SQLite for a file path, PostgreSQL for a postgres:// URL. */
  store: SqliteStore | PgStore
  auth: AuthService
  devices: DeviceService
  directory: DirectoryService
  events: DirectoryEvents
  delivery: DeliveryService
  hub: StreamHub
  /** Stops accepting requests, finishes the ones in flight, closes the database. */
  close(): Promise<void>
}

/**
 * The stores of `config.dbPath`. On PostgreSQL the hub also hears, through the doorbell, what the other instances on
 * the same database stored; SQLite has one instance per file, whose services tell the hub themselves.
 */
async function openStores(
  config: ServerConfig,
  hub: StreamHub,
  log: { listenerLost: (err: unknown) => void; ringLost: (err: unknown) => void },
) {
  if (!isPostgresUrl(config.dbPath)) {
    const store = new SqliteStore(config.dbPath, config.domain)
    // The delivery store shares the database and its one WriteBatcher: a Commit spends keys and
    // appends itself in one transaction.
    return {
      store,
      deliveryStore: new SqliteDeliveryStore(store.db, store.writes, store.buckets),
      close: () => store.close(),
    }
  }
  const store = await PgStore.open(config.dbPath, config.dbConnections)
  store.db.doorbell.onError = log.ringLost
  try {
    // The store first: a stream the hub checks again must not find a revoked session in the store's cache.
    const heard = {
      ring: (r: Ring) => {
        store.heard(r)
        hub.ring(r)
      },
      wakeAll: () => {
        store.missedRings()
        hub.wakeAll()
      },
    }
    const doorbell = await DoorbellListener.start(config.dbPath, store.db.instance, heard, log.listenerLost)
    const close = async () => {
      await doorbell.close()
      await store.close()
    }
    return { store, deliveryStore: new PgDeliveryStore(store.db), close }
  } catch (err) {
    await store.close()
    throw err
  }
}

export async function buildApp(config: ServerConfig): Promise<ServerApp> {
  // The hub hears of revoked sessions from the auth service and ends their streams.
  const hub = new StreamHub(config.wsPingIntervalMs)
  const options = {
    bodyLimit,
    logController: new LogController({ disableRequestLogging: !["debug", "trace"].includes(config.logLevel) }),
    logger: {
      level: config.logLevel,
      // Tokens and key material never reach the log; request bodies are never logged at all.
      redact: ["req.headers.authorization", "*.token", "*.nonce", "*.signature", "*.proof"],
      // stderr: stdout carries only main.ts's "listening on" line.
      stream: logDestination(config.logFormat),
    },
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false } },
  } satisfies FastifyServerOptions
  // With a certificate the same routes and the stream's upgrade run over TLS (HTTPS, WSS). Fastify types an HTTPS
  // instance apart; the routes and the stream use only what both kinds of server have.
  const http = config.tls
    ? (Fastify({ ...options, https: config.tls }) as unknown as FastifyInstance)
    : Fastify(options)
  const stores = await openStores(config, hub, {
    listenerLost: (err) => http.log.warn({ err }, "doorbell connection lost"),
    ringLost: (err) => http.log.warn({ err }, "doorbell ring not sent: other instances wake at the next one"),
  })
  const store = stores.store
  const events = new DirectoryEvents()
  const auth = new AuthService(
    store,
    config.domain,
    config.clock,
    { session: config.sessionTtlMs, challenge: config.challengeTtlMs },
    hub,
    {
      registerPerIp: { burst: config.registerIpBurst, perMinute: config.registerIpPerMinute },
      challengePerIp: { burst: config.challengeIpBurst, perMinute: config.challengeIpPerMinute },
      maxOutstandingChallenges: config.maxOutstandingChallenges,
    },
  )
  const devices = new DeviceService(store, config.domain, config.clock, hub, {
    burst: config.challengeIpBurst,
    perMinute: config.challengeIpPerMinute,
  })
  const directory = new DirectoryService(store, config.clock, events, config)

  http.decorateRequest("session", undefined)
  http.removeContentTypeParser("text/plain") // JSON only: anything else is 415
  http.setErrorHandler(errorHandler)
  http.setNotFoundHandler((request, reply) =>
    sendError(reply, new AppError("not_found", `no route ${request.method} ${request.url.split("?")[0]}`)),
  )
  authRoutes(http, auth, devices)
  keyRoutes(http, auth, directory)

  const deliveryStore = stores.deliveryStore
  const delivery = new DeliveryService(deliveryStore, config.clock, hub, events, config)
  deliveryRoutes(http, auth, delivery)
  const stream = attachStream(http, auth, deliveryStore, hub, config.clock, {
    maxBufferedBytes: config.wsMaxBufferedBytes,
    highWaterBytes: Math.min(256 * 1024, config.wsMaxBufferedBytes / 4),
    pageSize: 200,
    helloTimeoutMs: config.wsHelloTimeoutMs,
    maxConnectionsPerIp: config.wsMaxConnectionsPerIp,
  })

  const gc =
    config.gcIntervalMs > 0
      ? setInterval(() => {
          Promise.all([
            directory.collectGarbage(),
            delivery.collectGarbage(),
            store.pruneBuckets(config.clock.now()),
          ]).catch((err: unknown) => http.log.error({ err }, "garbage collection failed"))
        }, config.gcIntervalMs).unref()
      : undefined

  const app = http
  return {
    http,
    store,
    auth,
    devices,
    directory,
    events,
    delivery,
    hub,
    async close() {
      clearInterval(gc)
      stream.close()
      await app.close()
      await stores.close()
    },
  }
}
