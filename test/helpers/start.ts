/**
 * `npm start` (scripts/start.ts) as a user runs it, in a world of its own: HOME and the XDG dirs in a temp dir, so
 * its background server and daemons, their data, logs and sockets stay there. `cleanup` kills whatever it left.
 */
import { spawn } from "node:child_process"
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

export const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..")

export interface StartWorld {
  dir: string
  env: NodeJS.ProcessEnv
  socket(profile: string): string
  /** Runs `scripts/start.ts ARGS` without a terminal; resolves with its exit code and output. */
  run(args: string[], timeoutMs?: number): Promise<{ code: number | null; stdout: string; stderr: string }>
  /** The pids of the local server and the daemons of `profiles` recorded on disk (alive or not). */
  pids(profiles: string[]): number[]
  cleanup(profiles: string[]): void
}

export function startWorld(): StartWorld {
  const dir = mkdtempSync(join(tmpdir(), "mls-start-"))
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("MLSD_")))
  Object.assign(env, {
    HOME: join(dir, "home"),
    XDG_DATA_HOME: join(dir, "data"),
    XDG_STATE_HOME: join(dir, "state"),
    XDG_RUNTIME_DIR: join(dir, "run"),
  })
  for (const d of ["home", "data", "state", "run"]) mkdirSync(join(dir, d), { mode: 0o700 })
  const readPid = (file: string, pick: (text: string) => number) => {
    try {
      return [pick(readFileSync(file, "utf8"))]
    } catch {
      return []
    }
  }
  const world: StartWorld = {
    dir,
    env,
    socket: (profile) => join(dir, "run", "mls-chat", `${profile}.sock`),
    run(args, timeoutMs = 120_000) {
      return new Promise((resolve, reject) => {
        const child = spawn(process.execPath, ["--import", "tsx", join(root, "scripts", "start.ts"), ...args], {
          cwd: root,
          env,
          stdio: ["ignore", "pipe", "pipe"],
        })
        let stdout = ""
        let stderr = ""
        child.stdout.on("data", (d: Buffer) => (stdout += d.toString()))
        child.stderr.on("data", (d: Buffer) => (stderr += d.toString()))
        const timer = setTimeout(() => {
          child.kill("SIGKILL")
          reject(new Error(`start ${args.join(" ")} did not end within ${timeoutMs} ms:\n${stdout}${stderr}`))
        }, timeoutMs)
        child.on("exit", (code) => {
          clearTimeout(timer)
          resolve({ code, stdout, stderr })
        })
      })
    },
    pids: (profiles) =>
      [
        ...readPid(join(dir, "state", "mls-chat", "server.json"), (t) => (JSON.parse(t) as { pid: number }).pid),
        ...profiles.flatMap((p) => readPid(join(dir, "data", "mls-chat", p, "mlsd.pid"), (t) => parseInt(t, 10))),
      ].filter(Number.isInteger),
    cleanup(profiles) {
      for (const pid of world.pids(profiles)) {
        try {
          process.kill(pid, "SIGKILL")
        } catch {
          // already gone
        }
      }
      rmSync(dir, { recursive: true, force: true })
    },
  }
  return world
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
