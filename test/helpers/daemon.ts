/**
 * Real daemons for tests: `startDaemon(t, …)` spawns daemon/main.ts as a child process (node --import tsx) with a
 * temp data dir and socket and MLSD_TEST_CLOCK=1, waits for its "listening" line, and connects an `rpcClient`.
 * Cleanup (kill, temp dir removal) goes through `t.after`.
 */
import assert from "node:assert/strict"
import { spawn, type ChildProcess } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import type { TestContext } from "node:test"
import { fileURLToPath } from "node:url"
import { DaemonClient } from "../../daemon-client/index.js"
import { daemonNodeFlags } from "../../daemon/nodeFlags.js"

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..")

export interface DaemonOptions {
  /** Server URL passed as --server. */
  server?: string
  profile?: string
  /** Reuse a data dir (a restart of the same profile); a fresh temp dir otherwise. */
  dataDir?: string
  socketPath?: string
  args?: string[]
  env?: Record<string, string>
  /** Set MLSD_TEST_CLOCK=1 (default true). */
  testClock?: boolean
  /** The client checks results and notifications against their descriptors (default true; benchmarks turn it off). */
  validate?: boolean
  /** Node flags (default: the daemon's own, daemon/nodeFlags.ts). */
  nodeFlags?: readonly string[]
}

export interface TestDaemon {
  proc: ChildProcess
  profile: string
  dataDir: string
  dbPath: string
  socketPath: string
  client: DaemonClient
  /** stderr so far (the daemon's log). */
  stderr(): string
  /** Sends a signal and resolves with the exit code (SIGKILL: the signal name). */
  stop(signal?: NodeJS.Signals): Promise<number | string | null>
  /** Starts the same profile again (same data dir, socket and options). */
  restart(): Promise<TestDaemon>
}

/** A typed client that checks every result and notification against its descriptor. */
export function rpcClient(socketPath: string): Promise<DaemonClient> {
  return DaemonClient.connect(socketPath, { validate: true })
}

/** Spawns the daemon without waiting: for tests of refusals. Resolves with its exit code and output. */
export function runDaemon(args: string[], env: Record<string, string> = {}, timeoutMs = 20_000) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const proc = spawn(
      process.execPath,
      [...daemonNodeFlags, "--import", "tsx", join(root, "daemon", "main.ts"), ...args],
      {
        cwd: root,
        env: { ...process.env, ...env },
        stdio: ["ignore", "pipe", "pipe"],
      },
    )
    let stdout = ""
    let stderr = ""
    proc.stdout.on("data", (d: Buffer) => (stdout += d.toString()))
    proc.stderr.on("data", (d: Buffer) => (stderr += d.toString()))
    const timer = setTimeout(() => {
      proc.kill("SIGKILL")
      reject(new Error(`daemon did not exit within ${timeoutMs} ms: ${stdout}${stderr}`))
    }, timeoutMs)
    proc.on("exit", (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

/** Spawns a daemon and connects to it; the caller stops it (`stop`) and removes `tmp`. For benchmarks. */
export async function spawnDaemon(opts: DaemonOptions = {}): Promise<TestDaemon & { tmp: string }> {
  const tmp = mkdtempSync(join(tmpdir(), "mlsd-"))
  const dataDir = opts.dataDir ?? join(tmp, "data")
  const socketPath = opts.socketPath ?? join(tmp, "d.sock")
  const profile = opts.profile ?? "test"
  const args = [
    "--profile",
    profile,
    "--data-dir",
    dataDir,
    "--socket",
    socketPath,
    "--log-level",
    "warn",
    ...(opts.server ? ["--server", opts.server] : []),
    ...(opts.args ?? []),
  ]
  const env = { ...process.env, ...(opts.testClock === false ? {} : { MLSD_TEST_CLOCK: "1" }), ...opts.env }
  // BENCH_DAEMON_NODE_ARGS (e.g. "--cpu-prof") profiles the daemons under load.
  const nodeArgs = process.env.BENCH_DAEMON_NODE_ARGS?.split(" ").filter(Boolean) ?? []
  const proc = spawn(
    process.execPath,
    [...(opts.nodeFlags ?? daemonNodeFlags), ...nodeArgs, "--import", "tsx", join(root, "daemon", "main.ts"), ...args],
    {
      cwd: root,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    },
  )
  let stderr = ""
  let stdout = ""
  proc.stderr!.on("data", (d: Buffer) => (stderr += d.toString()))
  const exited = new Promise<number | string | null>((resolve) =>
    proc.on("exit", (code, signal) => resolve(code ?? signal)),
  )
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      // Killed, or the late daemon would keep the test process (and so the whole run) alive.
      proc.kill("SIGKILL")
      reject(new Error(`daemon did not start within 60 s: ${stdout}${stderr}`))
    }, 60_000)
    proc.stdout!.on("data", (d: Buffer) => {
      stdout += d.toString()
      if (stdout.includes("listening on")) {
        clearTimeout(timer)
        resolve()
      }
    })
    void exited.then((code) => {
      clearTimeout(timer)
      reject(new Error(`daemon exited (${code}) before listening: ${stdout}${stderr}`))
    })
  }).catch((err: unknown) => {
    proc.kill("SIGKILL")
    rmSync(tmp, { recursive: true, force: true })
    throw err
  })
  const client = await DaemonClient.connect(socketPath, { validate: opts.validate ?? true })
  return {
    tmp,
    proc,
    profile,
    dataDir,
    dbPath: join(dataDir, "mlsd.db"),
    socketPath,
    client,
    stderr: () => stderr,
    async stop(signal = "SIGTERM") {
      client.close()
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode ?? proc.signalCode
      proc.kill(signal)
      return exited
    },
    restart: () => spawnDaemon({ ...opts, profile, dataDir, socketPath }),
  }
}

export async function startDaemon(t: TestContext, opts: DaemonOptions = {}): Promise<TestDaemon> {
  const d = await spawnDaemon(opts)
  t.after(async () => {
    await d.stop("SIGKILL")
    rmSync(d.tmp, { recursive: true, force: true })
    // Every notification the test's client got matched its descriptor (results are checked as they come).
    assert.deepEqual(d.client.violations, [], "notifications that do not match their descriptors")
  })
  return {
    ...d,
    restart: () => startDaemon(t, { ...opts, profile: d.profile, dataDir: d.dataDir, socketPath: d.socketPath }),
  }
}
