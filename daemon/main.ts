/** mlsd: flags, paths, the profile lock, wiring, and a clean stop on SIGINT/SIGTERM. */
import { chmodSync, mkdirSync, unlinkSync } from "node:fs"
import { parseArgs } from "node:util"
import { pino } from "pino"
import { tsMlsPatchProblem } from "../crypto/tsMlsPatch.js"
import { servedMethods } from "../rpc-schema/daemon/index.js"
import { SettableClock } from "./clock.js"
import { Daemon } from "./daemon.js"
import { acquireLock, clearStaleSocket, ProfileLocked } from "./lock.js"
import { profilePaths, type ProfilePaths } from "./paths.js"
import { defaultPolicy, type MaintenancePolicy } from "./pool/policy.js"
import { buildRpcServer } from "./rpc/dispatch.js"
import { handlers } from "./rpc/handlers/index.js"
import { RpcSocketServer } from "./rpc/socket.js"

const version = "0.1.0"
const levels = ["fatal", "error", "warn", "info", "debug", "trace", "silent"]

const usage = `usage: mlsd [options]            (npm run daemon -- [options])

  --profile NAME              profile (default: $MLSD_PROFILE or the OS user name)
  --server URL                server to register with (default: $MLSD_SERVER)
  --data-dir DIR              data directory (default: $MLSD_DATA_DIR or $XDG_DATA_HOME/mls-chat/NAME)
  --socket PATH               socket (default: $MLSD_SOCKET or $XDG_RUNTIME_DIR/mls-chat/NAME.sock,
                              else $TMPDIR/mls-chat-UID/NAME.sock)
  --log-level LEVEL           fatal, error, warn, info, debug, trace or silent (default: $MLSD_LOG_LEVEL or info)
  --pool-target N             keys kept available (default ${defaultPolicy.target})
  --pool-low-watermark N      below this the pool is "low" (default ${defaultPolicy.lowWatermark})
  --pool-cap N                most keys on the server, reserved included (default ${defaultPolicy.cap})
  --pool-lifetime-s S         KeyPackage lifetime (default ${defaultPolicy.lifetimeMs / 1000})
  --pool-rotate-before-s S    rotate keys expiring within S (default ${defaultPolicy.rotateBeforeMs / 1000})
  --pool-grace-s S            keep private parts S past not_after (default ${defaultPolicy.graceMs / 1000})
  --no-last-resort            keep no last-resort key
  --maintenance-interval-s S  timer between maintenance passes (default ${defaultPolicy.maintenanceIntervalMs / 1000})
  --retry-max-s S             longest backoff after a failed pass (default ${defaultPolicy.retryMaxMs / 1000})
  -h, --help                  this text

Logs go to stderr. When ready it prints "mlsd: profile NAME listening on PATH" to stdout.
MLSD_TEST_CLOCK=1 (tests only) enables debug.setClock / debug.advanceClock.`

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
      "data-dir": { type: "string" },
      socket: { type: "string" },
      "log-level": { type: "string" },
      "pool-target": { type: "string" },
      "pool-low-watermark": { type: "string" },
      "pool-cap": { type: "string" },
      "pool-lifetime-s": { type: "string" },
      "pool-rotate-before-s": { type: "string" },
      "pool-grace-s": { type: "string" },
      "no-last-resort": { type: "boolean" },
      "maintenance-interval-s": { type: "string" },
      "retry-max-s": { type: "string" },
      help: { type: "boolean", short: "h" },
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
  maintenanceIntervalMs: seconds(
    "maintenance-interval-s",
    flags["maintenance-interval-s"],
    defaultPolicy.maintenanceIntervalMs,
    1,
  ),
  retryMaxMs: seconds("retry-max-s", flags["retry-max-s"], defaultPolicy.retryMaxMs, 1),
}
if (policy.target > policy.cap) fail("--pool-target must not exceed --pool-cap")

const level = flags["log-level"] ?? process.env.MLSD_LOG_LEVEL ?? "info"
if (!levels.includes(level)) fail(`--log-level must be one of ${levels.join(", ")}`)
const server = flags.server ?? process.env.MLSD_SERVER
if (server !== undefined && !/^https?:\/\/[^/?#\s]+\/?$/.test(server)) fail("--server must be an http(s) URL")

let paths: ProfilePaths
try {
  paths = profilePaths({ profile: flags.profile, dataDir: flags["data-dir"], socket: flags.socket }, process.env)
} catch (err) {
  fail((err as Error).message)
}
const log = pino({ level, base: { profile: paths.profile } }, pino.destination({ fd: 2, sync: true }))

mkdirSync(paths.dataDir, { recursive: true, mode: 0o700 })
chmodSync(paths.dataDir, 0o700)

let releaseLock: () => void
try {
  releaseLock = acquireLock(paths.lockPath)
  if (await clearStaleSocket(paths.socketPath)) log.info({ socket: paths.socketPath }, "removed a stale socket")
} catch (err) {
  if (err instanceof ProfileLocked) fail(`profile ${paths.profile}: ${err.message}`, 1)
  throw err
}

// TEST ONLY: a clock the debug.* methods can move; off unless MLSD_TEST_CLOCK=1.
const testClock = process.env.MLSD_TEST_CLOCK === "1" ? new SettableClock() : undefined
const daemon = new Daemon({
  version,
  profile: paths.profile,
  dataDir: paths.dataDir,
  dbPath: paths.dbPath,
  socketPath: paths.socketPath,
  server,
  policy,
  clock: testClock ?? new SettableClock(),
  log,
})
const served = servedMethods(testClock !== undefined)
const rpc = buildRpcServer(served, handlers({ daemon, served, testClock }), log)
const socket = new RpcSocketServer(async (line, conn) => rpc.receiveJSON(line, conn), log.child({ part: "rpc" }))
daemon.events.on((e) => socket.clients.forEach((c) => c.deliver(e)))
await socket.listen(paths.socketPath)
daemon.start()
process.stdout.write(`mlsd: profile ${paths.profile} listening on ${paths.socketPath}\n`)
log.info({ socket: paths.socketPath, dataDir: paths.dataDir, testClock: testClock !== undefined }, "started")

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
