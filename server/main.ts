/** mls-server: flags, then buildApp, listen, and a graceful stop on SIGINT/SIGTERM. */
import { mkdirSync, readFileSync } from "node:fs"
import { dirname } from "node:path"
import { parseArgs } from "node:util"
import { isClientIdDomain } from "../rpc-schema/common.js"
import { tsMlsPatchProblem } from "../crypto/tsMlsPatch.js"
import { defaultLogFormat, isLogFormat, isLogLevel, logFormats, logLevels } from "../logging/logging.js"
import { SchemaTooNew } from "../shared/migrate.js"
import { isPostgresUrl } from "./store/postgres/database.js"
import { buildApp, type ServerApp } from "./app.js"
import { defaultConfig, type ServerConfig } from "./config.js"
import { version } from "./routes/auth.js"

const usage = `usage: mls-server [options]

  --host HOST               address to listen on (default 127.0.0.1)
  --port PORT               port to listen on; 0 picks a free one (default 4000)
  --db PATH|URL             SQLite database file (default ./data/server.db), or a PostgreSQL database
                            postgres://USER:PASSWORD@HOST:PORT/DB: any number of instances may share one
  --db-connections N        PostgreSQL only: pooled connections of this instance, for its transactions and queries;
                            the instances' total is best kept at 2-3 per core of PostgreSQL (default ${defaultConfig.dbConnections})
  --domain NAME             the domain of new devices' client ids <user-id>:<device-id>@NAME, a lower-case DNS
                            name or IPv4 address; keep it once clients exist (default: --host)
  --reservation-ttl SECS    how long a reserved KeyPackage is held (default ${defaultConfig.reservationTtlMs / 1000})
  --reserve-burst N         reservations per (requester, target) pair at once (default ${defaultConfig.reserveBurst})
  --reserve-rate N          reservations per minute per pair after the burst (default ${defaultConfig.reservePerMinute})
  --reserve-target-burst N  reservations of one user's keys by everyone together at once (default ${defaultConfig.reserveTargetBurst})
  --reserve-target-rate N   ... per minute after the burst (default ${defaultConfig.reserveTargetPerMinute})
  --reserve-stranger-burst N  the share of that budget open to users who share no group with the target, at once
                            (default ${defaultConfig.reserveStrangerBurst})
  --reserve-stranger-rate N ... per minute after the burst (default ${defaultConfig.reserveStrangerPerMinute})
  --reserve-ip-burst N      reservations from one client address at once (default ${defaultConfig.reserveIpBurst})
  --reserve-ip-rate N       ... per minute after the burst (default ${defaultConfig.reserveIpPerMinute})
  --register-ip-burst N     registrations from one client address at once (default ${defaultConfig.registerIpBurst})
  --register-ip-rate N      ... per minute after the burst (default ${defaultConfig.registerIpPerMinute})
  --challenge-ip-burst N    login challenges from one client address at once (default ${defaultConfig.challengeIpBurst})
  --challenge-ip-rate N     ... per minute after the burst (default ${defaultConfig.challengeIpPerMinute})
  --max-challenges N        unanswered login challenges one user may have at once (default ${defaultConfig.maxOutstandingChallenges})
  --retention-days N        days group logs and unacknowledged inbox items are kept (default ${defaultConfig.deliveryRetentionMs / 86_400_000})
  --max-message-kib N       largest MLS message in KiB (default ${defaultConfig.maxMessageBytes / 1024})
  --post-burst N            posts (messages, Commits, new groups) per user at once (default ${defaultConfig.postBurst})
  --post-rate N             posts per minute per user after the burst (default ${defaultConfig.postPerMinute})
  --ws-ping SECS            stream ping interval; a connection silent for two is dropped; 0 = off (default ${defaultConfig.wsPingIntervalMs / 1000})
  --ws-max-buffer-kib N     disconnect a stream client with more than this buffered (default ${defaultConfig.wsMaxBufferedBytes / 1024})
  --ws-hello-timeout SECS   close a stream connection that sends no hello in this time (default ${defaultConfig.wsHelloTimeoutMs / 1000})
  --ws-max-per-ip N         stream connections one address may hold at once; more get HTTP 429 (default ${defaultConfig.wsMaxConnectionsPerIp})
  --tls-cert PATH           PEM certificate (chain): serve HTTPS and WSS; needs --tls-key (default plain HTTP,
                            for loopback or behind a TLS-terminating proxy)
  --tls-key PATH            PEM private key of --tls-cert
  --log-level LEVEL         fatal, error, warn, info, debug, trace or silent (default info)
  --log-format FORMAT       pretty or json (default: pretty when stderr is a terminal, else json)
  -h, --help                this text
  --version                 the server version

On start it prints one line "listening on http://HOST:PORT" (https with TLS) to stdout; logs go to stderr.
A start-up failure (port in use, database or TLS files unusable) is one line on stderr and exit status 1.`

/** A usage error: the message, the usage, exit status 2. */
function fail(message: string): never {
  process.stderr.write(`mls-server: ${message}\n${usage}\n`)
  process.exit(2)
}

/** A start-up failure: one line saying what and what to do, exit status 1 (no stack trace). */
function cannotStart(message: string): never {
  process.stderr.write(`mls-server: ${message}\n`)
  process.exit(1)
}

function positiveNumber(name: string, text: string | undefined, fallback: number, allowZero = false): number {
  if (text === undefined) return fallback
  const n = Number(text)
  if (!Number.isFinite(n) || n < 0 || (!allowZero && n === 0)) fail(`--${name} must be a positive number`)
  return n
}

function positiveInteger(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback
  const n = Number(text)
  if (!Number.isInteger(n) || n <= 0) fail(`--${name} must be a positive integer`)
  return n
}

/** Both files or neither; each must be readable (whether they form a valid pair is checked when the server starts). */
function tlsFiles(cert: string | undefined, key: string | undefined): ServerConfig["tls"] {
  if (cert === undefined && key === undefined) return undefined
  if (cert === undefined || key === undefined) fail("--tls-cert and --tls-key go together")
  const read = (flag: string, path: string) => {
    try {
      return readFileSync(path)
    } catch (err) {
      fail(`--${flag}: cannot read ${path}: ${(err as Error).message}`)
    }
  }
  return { cert: read("tls-cert", cert), key: read("tls-key", key) }
}

let parsed
try {
  parsed = parseArgs({
    options: {
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "4000" },
      db: { type: "string", default: "data/server.db" },
      "db-connections": { type: "string" },
      domain: { type: "string" },
      "reservation-ttl": { type: "string" },
      "reserve-burst": { type: "string" },
      "reserve-rate": { type: "string" },
      "reserve-target-burst": { type: "string" },
      "reserve-target-rate": { type: "string" },
      "reserve-stranger-burst": { type: "string" },
      "reserve-stranger-rate": { type: "string" },
      "reserve-ip-burst": { type: "string" },
      "reserve-ip-rate": { type: "string" },
      "register-ip-burst": { type: "string" },
      "register-ip-rate": { type: "string" },
      "challenge-ip-burst": { type: "string" },
      "challenge-ip-rate": { type: "string" },
      "max-challenges": { type: "string" },
      "retention-days": { type: "string" },
      "max-message-kib": { type: "string" },
      "post-burst": { type: "string" },
      "post-rate": { type: "string" },
      "ws-ping": { type: "string" },
      "ws-max-buffer-kib": { type: "string" },
      "ws-hello-timeout": { type: "string" },
      "ws-max-per-ip": { type: "string" },
      "tls-cert": { type: "string" },
      "tls-key": { type: "string" },
      "log-level": { type: "string", default: "info" },
      "log-format": { type: "string" },
      help: { type: "boolean", short: "h" },
      version: { type: "boolean" },
    },
    allowPositionals: false,
  })
} catch (err) {
  fail((err as Error).message)
}
const flags = parsed.values
if (flags.help) {
  process.stdout.write(usage + "\n")
  process.exit(0)
}
if (flags.version) {
  process.stdout.write(version + "\n")
  process.exit(0)
}
const unpatched = tsMlsPatchProblem()
if (unpatched !== undefined) cannotStart(unpatched)
const logLevel = flags["log-level"]!
if (!isLogLevel(logLevel)) fail(`--log-level must be one of ${logLevels.join(", ")}`)
const logFormat = flags["log-format"] ?? defaultLogFormat()
if (!isLogFormat(logFormat)) fail(`--log-format must be one of ${logFormats.join(", ")}`)
const port = positiveNumber("port", flags.port, 4000, true)
if (!Number.isInteger(port) || port > 65535) fail("--port must be an integer from 0 to 65535")

type Numeric = { [K in keyof ServerConfig]-?: ServerConfig[K] extends number ? K : never }[keyof ServerConfig]

/** `--NAME-burst` and `--NAME-rate` (per minute; 0 = no refill) of one token bucket. */
function bucketFlags(name: string, burst: Numeric, perMinute: Numeric): Partial<ServerConfig> {
  const values = flags as Record<string, string | boolean | undefined>
  return {
    [burst]: positiveNumber(`${name}-burst`, values[`${name}-burst`] as string | undefined, defaultConfig[burst]),
    [perMinute]: positiveNumber(
      `${name}-rate`,
      values[`${name}-rate`] as string | undefined,
      defaultConfig[perMinute],
      true,
    ),
  }
}

const domain = flags.domain ?? flags.host!
if (!isClientIdDomain(domain)) {
  fail(
    flags.domain === undefined
      ? `--host ${domain} cannot be the domain of client ids: give --domain (a lower-case DNS name or IPv4 address)`
      : "--domain must be a lower-case DNS name or IPv4 address",
  )
}

const config: ServerConfig = {
  ...defaultConfig,
  dbPath: flags.db!,
  dbConnections: positiveInteger("db-connections", flags["db-connections"], defaultConfig.dbConnections),
  domain,
  reservationTtlMs:
    positiveNumber("reservation-ttl", flags["reservation-ttl"], defaultConfig.reservationTtlMs / 1000) * 1000,
  reserveBurst: positiveNumber("reserve-burst", flags["reserve-burst"], defaultConfig.reserveBurst),
  reservePerMinute: positiveNumber("reserve-rate", flags["reserve-rate"], defaultConfig.reservePerMinute, true),
  ...bucketFlags("reserve-target", "reserveTargetBurst", "reserveTargetPerMinute"),
  ...bucketFlags("reserve-stranger", "reserveStrangerBurst", "reserveStrangerPerMinute"),
  ...bucketFlags("reserve-ip", "reserveIpBurst", "reserveIpPerMinute"),
  ...bucketFlags("register-ip", "registerIpBurst", "registerIpPerMinute"),
  ...bucketFlags("challenge-ip", "challengeIpBurst", "challengeIpPerMinute"),
  maxOutstandingChallenges: positiveInteger(
    "max-challenges",
    flags["max-challenges"],
    defaultConfig.maxOutstandingChallenges,
  ),
  deliveryRetentionMs:
    positiveNumber("retention-days", flags["retention-days"], defaultConfig.deliveryRetentionMs / 86_400_000) *
    86_400_000,
  maxMessageBytes:
    positiveNumber("max-message-kib", flags["max-message-kib"], defaultConfig.maxMessageBytes / 1024) * 1024,
  postBurst: positiveNumber("post-burst", flags["post-burst"], defaultConfig.postBurst),
  postPerMinute: positiveNumber("post-rate", flags["post-rate"], defaultConfig.postPerMinute, true),
  wsPingIntervalMs: positiveNumber("ws-ping", flags["ws-ping"], defaultConfig.wsPingIntervalMs / 1000, true) * 1000,
  wsMaxBufferedBytes:
    positiveNumber("ws-max-buffer-kib", flags["ws-max-buffer-kib"], defaultConfig.wsMaxBufferedBytes / 1024) * 1024,
  wsHelloTimeoutMs:
    positiveNumber("ws-hello-timeout", flags["ws-hello-timeout"], defaultConfig.wsHelloTimeoutMs / 1000) * 1000,
  wsMaxConnectionsPerIp: positiveInteger("ws-max-per-ip", flags["ws-max-per-ip"], defaultConfig.wsMaxConnectionsPerIp),
  logLevel,
  logFormat,
  tls: tlsFiles(flags["tls-cert"], flags["tls-key"]),
}
// setTimeout fires at once for delays past ~24.8 days.
if (config.wsHelloTimeoutMs > 3600_000) fail("--ws-hello-timeout must be at most 3600")

const host = flags.host!
const code = (err: unknown) => (err as NodeJS.ErrnoException).code ?? ""
const reason = (err: unknown) => (err as Error).message.split("\n")[0] ?? ""

// The database named in messages: a URL without its password.
const dbName = isPostgresUrl(config.dbPath) ? config.dbPath.replace(/:[^:@/]*@/, ":***@") : config.dbPath
if (!isPostgresUrl(config.dbPath)) {
  try {
    mkdirSync(dirname(config.dbPath), { recursive: true, mode: 0o700 })
  } catch (err) {
    cannotStart(`--db ${dbName}: cannot create its directory (${reason(err)}); choose another path with --db`)
  }
}

let app: ServerApp
try {
  app = await buildApp(config)
} catch (err) {
  if (err instanceof SchemaTooNew) cannotStart(err.message)
  if (code(err).startsWith("SQLITE_")) {
    cannotStart(`--db ${dbName}: cannot open the database (${reason(err)}); choose another path with --db`)
  }
  if (isPostgresUrl(config.dbPath)) {
    cannotStart(`--db ${dbName}: cannot use the PostgreSQL database (${reason(err)}); check the URL and the server`)
  }
  if (config.tls && (code(err).startsWith("ERR_OSSL") || /PEM|key values mismatch|certificate/i.test(reason(err)))) {
    cannotStart(`--tls-cert/--tls-key: not a usable PEM certificate and matching private key (${reason(err)})`)
  }
  cannotStart(`cannot start: ${reason(err)}`)
}

let address: string
try {
  address = await app.http.listen({ host, port })
} catch (err) {
  await app.close().catch(() => undefined)
  if (code(err) === "EADDRINUSE") {
    cannotStart(
      `port ${port} on ${host} is already in use (another mls-server?): stop it, or pick a free port with --port`,
    )
  }
  if (code(err) === "EACCES")
    cannotStart(`not allowed to listen on ${host}:${port}: pick a port above 1023 with --port`)
  if (code(err) === "EADDRNOTAVAIL" || code(err) === "ENOTFOUND") {
    cannotStart(`cannot listen on ${host}: not an address of this machine; pick another with --host`)
  }
  cannotStart(`cannot listen on ${host}:${port}: ${reason(err)}`)
}

let stopping = false
async function stop(signal: string) {
  if (stopping) return
  stopping = true
  app.http.log.info({ signal }, "shutting down")
  await app.close()
  process.exit(0)
}
process.on("SIGINT", () => void stop("SIGINT"))
process.on("SIGTERM", () => void stop("SIGTERM"))
// Ready is said only once the signal handlers are in place: whoever reads the line may stop us at once.
process.stdout.write(`listening on ${address}\n`)
