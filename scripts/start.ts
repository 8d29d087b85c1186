/**
 * `npm start` and the `mls-chat` bin: the embedded defaults in one command. Finds a server (or starts a local one in
 * the background), starts the profile's daemon in the background if none serves it, registers the profile on first
 * run, then opens the TUI on a terminal, or prints where everything is and exits without one. `--stop` stops the
 * profile's daemon and the local server this command started.
 */
import { spawn } from "node:child_process"
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { homedir, userInfo } from "node:os"
import { dirname, join } from "node:path"
import { createInterface } from "node:readline/promises"
import { setTimeout as sleep } from "node:timers/promises"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import { DaemonClient, DaemonError } from "../daemon-client/index.js"
import { profilePaths } from "../daemon/paths.js"
import { daemonNodeFlags } from "../daemon/nodeFlags.js"
import type { PoolStatusResult } from "../rpc-schema/daemon/pool.js"

// The checkout: one folder up from the source (scripts/start.ts), two from the build (dist/scripts/start.js).
const here = dirname(fileURLToPath(import.meta.url))
const root = existsSync(join(here, "..", "package.json")) ? join(here, "..") : join(here, "..", "..")
const usage = `usage: npm start -- [options]        (or: mls-chat [options])

  --profile NAME   the daemon profile (default: $MLSD_PROFILE or your user name, lower-cased)
  --server URL     use the server at URL (it must answer); default: the local one
  --port PORT      port of the local server (default 4000; 0 picks a free one)
  --user NAME      user name to register on first run (default: asked on a terminal, else the profile name)
  --stop           stop the profile's daemon and the local server this command started, then exit
  -h, --help       this text

It starts the profile's daemon mlsd in the background unless one already serves the profile (log in
$XDG_STATE_HOME/mls-chat/NAME.log). On the first run it registers the profile with a server: --server,
else the local server this command started earlier, else one answering at http://127.0.0.1:PORT,
else a new local server it starts in the background (database in
$XDG_DATA_HOME/mls-chat/server/server.db, log in $XDG_STATE_HOME/mls-chat/server.log). Later runs use
the server the profile registered with, starting the local one again if that is the one and it is down.

On a terminal it then opens the chat (the TUI); /quit or Ctrl-C leaves it and the daemon keeps
running, keeping the profile's KeyPackage pool filled. Without a terminal (a script, CI) it waits
until the pool is filled, prints where everything is and exits 0, leaving the daemon running.
A second user on the same machine is one more command: npm start -- --profile bob.`

function fail(message: string, code = 1): never {
  process.stderr.write(`mls-chat: ${message}\n${code === 2 ? usage + "\n" : ""}`)
  process.exit(code)
}

function parseFlags() {
  try {
    return parseArgs({
      options: {
        profile: { type: "string" },
        server: { type: "string" },
        port: { type: "string", default: "4000" },
        user: { type: "string" },
        stop: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }).values
  } catch (err) {
    fail((err as Error).message, 2)
  }
}
const flags = parseFlags()
if (flags.help) {
  process.stdout.write(usage + "\n")
  process.exit(0)
}
const port = Number(flags.port)
if (!Number.isInteger(port) || port < 0 || port > 65535) fail("--port must be an integer from 0 to 65535", 2)
if (flags.server !== undefined && !/^https?:\/\/[^/?#\s]+\/?$/.test(flags.server)) {
  fail("--server must be an http(s) URL such as http://127.0.0.1:4000", 2)
}
/** --server without a trailing slash. */
const given = flags.server?.replace(/\/$/, "")
const userPattern = /^[a-z0-9][a-z0-9._-]{0,31}$/
if (flags.user !== undefined && !userPattern.test(flags.user)) fail("--user: use a-z, 0-9, . _ - (up to 32)", 2)

const env = process.env
const profile =
  flags.profile ??
  env.MLSD_PROFILE ??
  userInfo()
    .username.toLowerCase()
    .replace(/[^a-z0-9._-]/g, "-")
function resolvePaths() {
  try {
    return profilePaths({ profile }, env)
  } catch (err) {
    fail((err as Error).message, 2)
  }
}
const paths = resolvePaths()
const dataHome = env.XDG_DATA_HOME || join(homedir(), ".local", "share")
const stateDir = join(env.XDG_STATE_HOME || join(homedir(), ".local", "state"), "mls-chat")
const serverDb = join(dataHome, "mls-chat", "server", "server.db")
const serverLog = join(stateDir, "server.log")
/** The local server this command started: {pid, url}, so later runs reuse it and `--stop` stops it. */
const serverStateFile = join(stateDir, "server.json")
const daemonLog = join(stateDir, `${paths.profile}.log`)

interface LocalServer {
  /** Absent once `--stop` stopped it (the URL stays known, so a later run starts it again there). */
  pid?: number
  url: string
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM"
  }
}

/** Polls `check` every 100 ms until it gives a value, for at most `ms`; undefined on time-out. */
async function poll<T>(ms: number, check: () => T | undefined | Promise<T | undefined>): Promise<T | undefined> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(100)) {
    const v = await check()
    if (v !== undefined) return v
  }
  return undefined
}

async function answers(url: string): Promise<boolean> {
  try {
    const res = await fetch(new URL("/v1/health", url), { signal: AbortSignal.timeout(2000) })
    return res.ok && ((await res.json()) as { status?: unknown }).status === "ok"
  } catch {
    return false
  }
}

/** The local server this command recorded, whether or not it still runs. */
function recordedServer(): LocalServer | undefined {
  try {
    const s = JSON.parse(readFileSync(serverStateFile, "utf8")) as LocalServer
    return typeof s.url === "string" ? s : undefined
  } catch {
    return undefined
  }
}

/** The recorded local server while its process lives. */
function readLocalServer(): (LocalServer & { pid: number }) | undefined {
  const s = recordedServer()
  return s && Number.isInteger(s.pid) && alive(s.pid!) ? (s as LocalServer & { pid: number }) : undefined
}

/** The last lines of a log, to say why a background process ended. */
function tail(file: string, from: number): string {
  try {
    const lines = readFileSync(file, "utf8").slice(from).trim().split("\n")
    return lines.slice(-5).join("\n")
  } catch {
    return ""
  }
}

/** The entry point of each background process, from the sources (`npm start` runs through tsx). */
const sourceEntry = { "mls-server": "server/main.ts", mlsd: "daemon/main.ts" } as const
/** Their Node flags when run from the sources (the bins pass their own). */
const nodeFlags = { "mls-server": [], mlsd: daemonNodeFlags } as const

/**
 * Starts NAME in the background (its own process group, stdout and stderr appended to `log`). From the sources (`npm
 * start`) it runs the sources through tsx's loader, so an edit needs no build; from the build (the `mls-chat` bin) it
 * runs `bin/NAME`, the built JavaScript.
 */
function launch(bin: keyof typeof sourceEntry, args: string[], log: string) {
  mkdirSync(dirname(log), { recursive: true, mode: 0o700 })
  const offset = existsSync(log) ? statSync(log).size : 0
  const fd = openSync(log, "a", 0o600)
  const [command, argv] = import.meta.url.endsWith(".ts")
    ? [process.execPath, [...nodeFlags[bin], "--import", "tsx", join(root, sourceEntry[bin]), ...args]]
    : [join(root, "bin", bin), args]
  const child = spawn(command, argv, { cwd: root, env, detached: true, stdio: ["ignore", fd, fd] })
  closeSync(fd)
  child.unref()
  let exited: string | undefined
  child.once("exit", (code, signal) => (exited = `${bin} exited (${signal ?? `status ${code}`})`))
  return {
    pid: child.pid!,
    offset,
    /** Why it ended, with its last log lines, or undefined while it runs. */
    exited: () => (exited === undefined ? undefined : `${exited}:\n${tail(log, offset)}`),
  }
}

interface Server {
  url: string
  /** How it was found, for the summary. */
  note: string
  /** It answered (or was started) just now. */
  up: boolean
}

/** Starts the local server in the background on `listenPort` and records it; its URL comes from its log. */
async function startLocalServer(listenPort: number): Promise<Server> {
  mkdirSync(dirname(serverDb), { recursive: true, mode: 0o700 })
  const server = launch("mls-server", ["--port", String(listenPort), "--db", serverDb], serverLog)
  const url = await poll(30_000, () => {
    const why = server.exited()
    if (why) fail(`the local server did not start: ${why}`)
    return /^listening on (\S+)/m.exec(readFileSync(serverLog, "utf8").slice(server.offset))?.[1]
  })
  if (!url) fail(`the local server did not say it was listening within 30 s; see ${serverLog}`)
  mkdirSync(stateDir, { recursive: true, mode: 0o700 })
  writeFileSync(serverStateFile, JSON.stringify({ pid: server.pid, url } satisfies LocalServer) + "\n", { mode: 0o600 })
  return { url, note: `started now: pid ${server.pid}, database ${serverDb}, log ${serverLog}`, up: true }
}

/** A first run's server: --server, else the local one that runs, else one at the default address, else a new one. */
async function findServer(): Promise<Server> {
  if (given !== undefined) return { url: given, note: "given by --server", up: true } // main() checked it answers
  const local = readLocalServer()
  if (local && (await answers(local.url))) {
    return { url: local.url, note: `local, pid ${local.pid}, log ${serverLog}`, up: true }
  }
  if (port !== 0) {
    const url = `http://127.0.0.1:${port}`
    if (await answers(url)) return { url, note: "already running (not started by this command)", up: true }
  }
  return startLocalServer(port)
}

/**
 * A registered profile's server is the one it registered with. When that is the local server (the default address,
 * or the one this command last started) and nothing answers, the local server is started again on its port, on the
 * same database; any other server is the daemon's to reconnect to when it comes back.
 */
async function serverOf(url: string): Promise<Server> {
  if (given !== undefined && given !== url) {
    fail(`profile ${paths.profile} is registered with ${url}, not ${given}; use another --profile`)
  }
  const local = readLocalServer()
  if (await answers(url)) {
    return {
      url,
      note: local?.url === url ? `local, pid ${local.pid}, log ${serverLog}` : "the profile's server",
      up: true,
    }
  }
  const u = new URL(url)
  const recorded = recordedServer()?.url === url
  if (u.hostname === "127.0.0.1" && (recorded || Number(u.port) === port)) return startLocalServer(Number(u.port))
  return { url, note: "not answering now: the daemon reconnects by itself when it does", up: false }
}

async function connect(): Promise<DaemonClient | undefined> {
  try {
    return await DaemonClient.connect(paths.socketPath)
  } catch {
    return undefined
  }
}

/** The profile's daemon, started in the background unless one already answers on its socket. */
async function findDaemon(): Promise<{ client: DaemonClient; note: string }> {
  const running = await connect()
  if (running) return { client: running, note: "already running" }
  // No --server: a registered profile knows its server, a new one is told at registration.
  const daemon = launch("mlsd", ["--profile", paths.profile], daemonLog)
  const client = await poll(30_000, () => {
    const why = daemon.exited()
    if (why) fail(`the daemon did not start: ${why}`)
    return connect()
  })
  if (!client) fail(`the daemon did not answer on ${paths.socketPath} within 30 s; see ${daemonLog}`)
  return { client, note: "started now" }
}

/** First run: registers the profile, asking for the user name on a terminal. */
async function register(client: DaemonClient, url: string, tty: boolean) {
  const fallback = paths.profile.toLowerCase().replace(/[^a-z0-9._-]/g, "-")
  // terminal: false leaves the terminal's modes alone (the TUI sets raw mode after this).
  const rl =
    tty && !flags.user ? createInterface({ input: process.stdin, output: process.stdout, terminal: false }) : undefined
  try {
    for (;;) {
      const answer = rl ? (await rl.question(`user name to register at ${url} [${fallback}]: `)).trim() : ""
      const username = flags.user ?? (answer || fallback)
      try {
        return await client.call("identity.register", { username, server: url })
      } catch (err) {
        // On a terminal a taken or malformed name is asked again; anywhere else it ends the run.
        const again = err instanceof DaemonError && (err.appCode === "username_taken" || err.code === -32602)
        if (!rl || !again) throw err
        process.stdout.write(`${err.message}; try another name\n`)
      }
    }
  } finally {
    rl?.close()
  }
}

/** Sends SIGTERM and waits (bounded) until the process is gone. */
async function terminate(pid: number): Promise<boolean> {
  if (!alive(pid)) return true
  process.kill(pid, "SIGTERM")
  return (await poll(15_000, () => (alive(pid) ? undefined : true))) === true
}

async function stop(): Promise<never> {
  const client = await connect()
  if (client) {
    const { pid } = await client.call("daemon.status")
    client.close()
    if (!(await terminate(pid))) fail(`the daemon (pid ${pid}) did not stop within 15 s`)
    process.stdout.write(`stopped the daemon of profile ${paths.profile} (pid ${pid})\n`)
  } else process.stdout.write(`no daemon serves profile ${paths.profile}\n`)
  // Only a recorded server that still answers at its URL is ours to stop (a reused pid is not).
  const local = readLocalServer()
  if (local && (await answers(local.url))) {
    if (!(await terminate(local.pid))) fail(`the local server (pid ${local.pid}) did not stop within 15 s`)
    process.stdout.write(`stopped the local server at ${local.url} (pid ${local.pid})\n`)
    writeFileSync(serverStateFile, JSON.stringify({ url: local.url } satisfies LocalServer) + "\n", { mode: 0o600 })
  }
  process.exit(0)
}

/** The summary's pool line; `when` ("now ") tells it from the one printed before the chat. */
function poolLine(pool: PoolStatusResult, when = ""): string {
  const { available, policy, lastResort, health } = pool
  return `pool    ${when}${available}/${policy.target} available, last resort ${lastResort ? "yes" : "no"}, health ${health}`
}

async function main(): Promise<never> {
  if (flags.stop) return stop()
  const tty = process.stdin.isTTY === true && process.stdout.isTTY === true
  // A server asked for must answer before anything is started.
  if (given !== undefined && !(await answers(given)))
    fail(`no mls-server answers at ${given} (is it running? check the URL)`)
  const daemon = await findDaemon()
  const { client } = daemon
  const known = await client.call("identity.get")
  const server = known.registered ? await serverOf(known.server!) : await findServer()
  const me = known.registered ? known : await register(client, server.url, tty)
  const status = await client.call("daemon.status")
  if (!tty && server.up) {
    // For scripts: the pool is ready to be invited with when this returns.
    await client.call("events.subscribe", { events: ["pool.changed"] })
    const full = (p: { available: number; policy: { target: number } }) => p.available >= p.policy.target
    if (!full(await client.call("pool.status"))) await client.next("pool.changed", (p) => full(p.status), 60_000)
  }
  const pool = await client.call("pool.status")
  client.close()
  process.stdout.write(`server  ${server.url}  (${server.note})
daemon  profile ${paths.profile}, pid ${status.pid} (${daemon.note}), socket ${paths.socketPath}, log ${daemonLog}
user    ${me.username} (signature key ${me.signatureKey})
${poolLine(pool)}
`)
  let pid: number | undefined = status.pid
  if (tty) {
    // Ink draws only the last frame when the environment says CI (its is-in-ci check, made when Ink loads); this is
    // a person's terminal, so the screen must be live whatever CI variables the shell carries.
    delete process.env.CI
    delete process.env.CONTINUOUS_INTEGRATION
    const { runTui } = await import("../tui/main.js")
    await runTui(paths.socketPath)
    // The daemon may have been restarted while the TUI ran: say which one runs now, and its pool now (the lines above,
    // back on the screen, tell how things stood before the chat opened: a first run's pool still empty).
    const now = await connect()
    pid = now ? (await now.call("daemon.status")).pid : undefined
    if (now) process.stdout.write(`${poolLine(await now.call("pool.status"), "now ")}\n`)
    now?.close()
  }
  const stopHint = `npm start -- --stop${flags.profile ? ` --profile ${paths.profile}` : ""}`
  process.stdout.write(
    pid === undefined
      ? `No daemon serves profile ${paths.profile} now; npm start starts it again.\n`
      : `The daemon keeps running (pid ${pid}); ${stopHint} stops it and the local server.\n`,
  )
  process.exit(0)
}

main().catch((err: unknown) =>
  fail(
    err instanceof DaemonError ? `${err.appCode ?? err.code}: ${err.message}` : String((err as Error).message ?? err),
  ),
)
