/** mlsd: flags, paths, the profile lock, wiring, and a clean stop on SIGINT/SIGTERM. */
import { chmodSync, mkdirSync, unlinkSync } from "node:fs"
import { parseArgs } from "node:util"
import { pino } from "pino"
import { tsMlsPatchProblem } from "../crypto/tsMlsPatch.js"
import { defaultLogFormat, isLogFormat, isLogLevel, logDestination, logFormats, logLevels } from "../logging/logging.js"
import { Value } from "@sinclair/typebox/value"
import { normalizeName } from "../rpc-schema/common.js"
import { LinkCode } from "../rpc-schema/common.js"
import { servedMethods } from "../rpc-schema/daemon/index.js"
import { SettableClock } from "./clock.js"
import { Daemon } from "./daemon.js"
import { missingNodeFlags } from "./nodeFlags.js"
import { SchemaTooNew } from "../shared/migrate.js"
import { acquireLock, clearStaleSocket, ProfileLocked } from "./lock.js"
import { profilePaths, type ProfilePaths } from "./paths.js"
import { defaultPolicy, type MaintenancePolicy } from "./pool/policy.js"
import { buildRpcServer } from "./rpc/dispatch.js"
import { handlers } from "./rpc/handlers/index.js"
import { RpcSocketServer } from "./rpc/socket.js"

const version = "0.1.0"

const usage = `usage: mlsd [options]            (npm run daemon -- [options])

  --profile NAME              profile (default: $MLSD_PROFILE or the OS user name); folded to lower case
  --server URL                server to register with (default: $MLSD_SERVER)
  --username NAME             on first run, register NAME (folded to lower case) with --server, retrying in the
                              background while the server cannot be reached (default: $MLSD_USERNAME; without
                              it, register over the socket with identity.register); ignored once registered
  --link CODE                 on first run, become a new device of an existing account with a link code made on one
                              of its devices (identity.linkCode, mlsctl link-code) on --server; not retried: a
                              refused or unreachable attempt leaves the profile unregistered; ignored once registered
  --invites auto|ask          auto: join every Welcome at once; ask: keep it pending until group.accept or
                              group.decline (default: $MLSD_INVITES, else the profile's stored setting, first auto);
                              stored as the profile's setting (settings.set changes it too)
  --data-dir DIR              data directory (default: $MLSD_DATA_DIR or $XDG_DATA_HOME/mls-chat/NAME)
  --socket PATH               socket (default: $MLSD_SOCKET or $XDG_RUNTIME_DIR/mls-chat/NAME.sock,
                              else $TMPDIR/mls-chat-UID/NAME.sock)
  --log-level LEVEL           fatal, error, warn, info, debug, trace or silent (default: $MLSD_LOG_LEVEL or info)
  --log-format FORMAT         pretty or json (default: pretty when stderr is a terminal, else json)
  --pool-target N             keys kept available (default ${defaultPolicy.target})
  --pool-low-watermark N      below this the pool is "low" (default ${defaultPolicy.lowWatermark})
  --pool-cap N                most keys on the server, reserved included (default ${defaultPolicy.cap})
  --pool-lifetime-s S         KeyPackage lifetime (default ${defaultPolicy.lifetimeMs / 1000})
  --pool-rotate-before-s S    rotate keys expiring within S (default ${defaultPolicy.rotateBeforeMs / 1000})
  --pool-grace-s S            keep private parts S past not_after (default ${defaultPolicy.graceMs / 1000})
  --no-last-resort            keep no last-resort key
  --pool-fixed                keep the target at --pool-target instead of sizing it from the measured demand
                              (between --pool-target and --pool-cap)
  --pool-suspicious-lapses N  pool.suspicious when one requester lets more than N reservations lapse in an hour
                              (default ${defaultPolicy.suspiciousLapses})
  --pool-event-delay-ms MS    delay between a key event from the server and the refill pass it triggers; events
                              meanwhile share the pass (default ${defaultPolicy.eventDelayMs})
  --maintenance-interval-s S  timer between maintenance passes (default ${defaultPolicy.maintenanceIntervalMs / 1000})
  --retry-max-s S             longest backoff after a failed pass (default ${defaultPolicy.retryMaxMs / 1000})
  -h, --help                  this text
  --version                   the daemon's version

Logs go to stderr. When ready it prints "mlsd: profile NAME listening on PATH" to stdout. A start-up failure
(data dir or socket unusable, profile in use) is one line on stderr and exit status 1.
MLSD_TEST_CLOCK=1 (tests only) enables debug.setClock / debug.advanceClock.`

/** A usage error (code 2, with the usage) or a start-up failure (code 1): one line, no stack trace. */
function fail(message: string, code = 2): never {
  process.stderr.write(`mlsd: ${message}\n${code === 2 ? usage + "\n" : ""}`)
  process.exit(code)
}

let parsed
try {
  parsed = parseArgs({
    options: {
      profile: { type: "string" },
      server: { type: "string" },
      username: { type: "string" },
      link: { type: "string" },
      invites: { type: "string" },
      "data-dir": { type: "string" },
      socket: { type: "string" },
      "log-level": { type: "string" },
      "log-format": { type: "string" },
      "pool-target": { type: "string" },
      "pool-low-watermark": { type: "string" },
      "pool-cap": { type: "string" },
      "pool-lifetime-s": { type: "string" },
      "pool-rotate-before-s": { type: "string" },
      "pool-grace-s": { type: "string" },
      "no-last-resort": { type: "boolean" },
      "pool-fixed": { type: "boolean" },
      "pool-suspicious-lapses": { type: "string" },
      "pool-event-delay-ms": { type: "string" },
      "maintenance-interval-s": { type: "string" },
      "retry-max-s": { type: "string" },
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
if (unpatched !== undefined) fail(unpatched, 1)

function count(name: string, text: string | undefined, fallback: number, min = 0): number {
  if (text === undefined) return fallback
  const n = Number(text)
  if (!Number.isInteger(n) || n < min) fail(`--${name} must be an integer >= ${min}`)
  return n
}
const seconds = (name: string, text: string | undefined, fallbackMs: number, min = 0) =>
  text === undefined ? fallbackMs : count(name, text, 0, min) * 1000

const policy: MaintenancePolicy = {
  ...defaultPolicy,
  target: count("pool-target", flags["pool-target"], defaultPolicy.target, 1),
  lowWatermark: count("pool-low-watermark", flags["pool-low-watermark"], defaultPolicy.lowWatermark),
  cap: count("pool-cap", flags["pool-cap"], defaultPolicy.cap, 1),
  lifetimeMs: seconds("pool-lifetime-s", flags["pool-lifetime-s"], defaultPolicy.lifetimeMs, 1),
  rotateBeforeMs: seconds("pool-rotate-before-s", flags["pool-rotate-before-s"], defaultPolicy.rotateBeforeMs),
  graceMs: seconds("pool-grace-s", flags["pool-grace-s"], defaultPolicy.graceMs),
  lastResort: !flags["no-last-resort"],
  adaptive: !flags["pool-fixed"],
  suspiciousLapses: count("pool-suspicious-lapses", flags["pool-suspicious-lapses"], defaultPolicy.suspiciousLapses),
  eventDelayMs: count("pool-event-delay-ms", flags["pool-event-delay-ms"], defaultPolicy.eventDelayMs),
  maintenanceIntervalMs: seconds(
    "maintenance-interval-s",
    flags["maintenance-interval-s"],
    defaultPolicy.maintenanceIntervalMs,
    1,
  ),
  retryMaxMs: seconds("retry-max-s", flags["retry-max-s"], defaultPolicy.retryMaxMs, 1),
}
if (policy.target > policy.cap) fail("--pool-target must not exceed --pool-cap")
// setTimeout fires at once for delays past ~24.8 days.
if (policy.eventDelayMs > 2 ** 31 - 1) fail("--pool-event-delay-ms must be at most 2147483647")

const level = flags["log-level"] ?? process.env.MLSD_LOG_LEVEL ?? "info"
if (!isLogLevel(level)) fail(`--log-level must be one of ${logLevels.join(", ")}`)
const logFormat = flags["log-format"] ?? defaultLogFormat()
if (!isLogFormat(logFormat)) fail(`--log-format must be one of ${logFormats.join(", ")}`)
const server = flags.server ?? process.env.MLSD_SERVER
if (server !== undefined && !/^https?:\/\/[^/?#\s]+\/?$/.test(server)) fail("--server must be an http(s) URL")
const usernameText = flags.username ?? process.env.MLSD_USERNAME
const username = usernameText === undefined ? undefined : normalizeName(usernameText)
if (usernameText !== undefined && username === undefined) {
  fail(`invalid user name "${usernameText}": use [A-Za-z0-9._-], 1..32, starting with a letter or digit`)
}
const invites = flags.invites ?? process.env.MLSD_INVITES
if (invites !== undefined && invites !== "auto" && invites !== "ask") fail("--invites must be auto or ask")
if (username !== undefined && server === undefined) fail("--username needs --server (or $MLSD_SERVER)")
const link = flags.link
if (link !== undefined && !Value.Check(LinkCode, link)) fail(`invalid link code "${link}": use XXXX-XXXX-XXXX-XXXX`)
if (link !== undefined && server === undefined) fail("--link needs --server (or $MLSD_SERVER)")
if (link !== undefined && username !== undefined) fail("--link and --username exclude each other")

let paths: ProfilePaths
try {
  paths = profilePaths({ profile: flags.profile, dataDir: flags["data-dir"], socket: flags.socket }, process.env)
} catch (err) {
  fail((err as Error).message)
}
const log = pino({ level, base: { profile: paths.profile } }, logDestination(logFormat))
const reason = (err: unknown) => (err as Error).message.split("\n")[0] ?? ""

try {
  mkdirSync(paths.dataDir, { recursive: true, mode: 0o700 })
  chmodSync(paths.dataDir, 0o700)
} catch (err) {
  fail(`data dir ${paths.dataDir} is not usable (${reason(err)}): choose another with --data-dir`, 1)
}

let releaseLock: () => void
try {
  releaseLock = await acquireLock(paths.dataDir, paths.pidPath)
} catch (err) {
  if (err instanceof ProfileLocked) fail(`profile ${paths.profile}: ${err.message}`, 1)
  fail(`data dir ${paths.dataDir} is not writable (${reason(err)}): choose another with --data-dir`, 1)
}
try {
  if (await clearStaleSocket(paths.socketPath)) log.info({ socket: paths.socketPath }, "removed a stale socket")
} catch (err) {
  releaseLock()
  fail(`socket ${paths.socketPath}: ${reason(err)}`, 1)
}

// TEST ONLY: a clock the debug.* methods can move; off unless MLSD_TEST_CLOCK=1.
const testClock = process.env.MLSD_TEST_CLOCK === "1" ? new SettableClock() : undefined
let daemon: Daemon
try {
  daemon = new Daemon({
    version,
    profile: paths.profile,
    dataDir: paths.dataDir,
    dbPath: paths.dbPath,
    socketPath: paths.socketPath,
    server,
    username,
    link,
    invites,
    policy,
    clock: testClock ?? new SettableClock(),
    log,
  })
} catch (err) {
  releaseLock()
  if (err instanceof SchemaTooNew) fail(`profile ${paths.profile}: ${err.message}`, 1)
  fail(`database ${paths.dbPath} cannot be opened (${reason(err)}): choose another --data-dir`, 1)
}
const served = servedMethods(testClock !== undefined)
const rpc = buildRpcServer(served, handlers({ daemon, served, testClock }), log)
const socket = new RpcSocketServer(async (line, conn) => rpc.receiveJSON(line, conn), log.child({ part: "rpc" }))
daemon.events.on((e) => socket.clients.forEach((c) => c.deliver(e)))
try {
  await socket.listen(paths.socketPath)
} catch (err) {
  await daemon.close()
  releaseLock()
  fail(`cannot listen on socket ${paths.socketPath} (${reason(err)}): choose another with --socket`, 1)
}
daemon.start()

let stopping = false
async function stop(signal: string): Promise<void> {
  if (stopping) return
  stopping = true
  log.info({ signal }, "shutting down")
  await socket.close()
  await daemon.close()
  try {
    unlinkSync(paths.socketPath)
  } catch {
    // removed by server.close already
  }
  releaseLock()
  process.exit(0)
}
process.on("SIGINT", () => void stop("SIGINT"))
process.on("SIGTERM", () => void stop("SIGTERM"))
// Ready is said only once the signal handlers are in place: whoever reads the line may stop us at once.
process.stdout.write(`mlsd: profile ${paths.profile} listening on ${paths.socketPath}\n`)
// Start-up's own warnings go before "started", so that whoever reads the log up to that line has them all.
const missing = missingNodeFlags()
if (missing.length > 0)
  log.warn({ missing }, "started without the Node flags bin/mlsd passes (daemon/nodeFlags.ts): big groups run slower")
log.info({ socket: paths.socketPath, dataDir: paths.dataDir, testClock: testClock !== undefined }, "started")
