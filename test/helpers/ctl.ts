/**
 * mlsctl for tests, as it ships: `buildCtl(t)` builds the sources with scripts/build.mjs into a fresh .tmp/ folder
 * (what `npm ci` does into dist/), and runs the bundled mlsctl.js as a child process. `binDir` holds an `mlsctl`
 * command for shell scripts (put it first on PATH). `watch` keeps a long-running mlsctl and waits on its lines.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process"
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { createInterface } from "node:readline"
import type { TestContext } from "node:test"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"

export const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..")

export interface RunResult {
  code: number | null
  stdout: string
  stderr: string
}

export interface Lines {
  proc: ChildProcess
  /** stdout lines so far. */
  lines: string[]
  stderr(): string
  /** Resolves with the first stdout line (seen or to come) matching `predicate`; rejects after `timeoutMs`. */
  line(predicate: (line: string) => boolean, timeoutMs?: number): Promise<string>
  /** Resolves once stderr matches `pattern`. */
  stderrMatch(pattern: RegExp, timeoutMs?: number): Promise<void>
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string | null>
  /** Kills the process group (a shell script and its pipeline). */
  kill(): Promise<void>
}

export interface Ctl {
  /** A folder with an `mlsctl` command in it. */
  binDir: string
  /** Runs mlsctl with `args` (stdin: `input`, closed at once when none) and resolves when it exits. */
  run(args: string[], opts?: { env?: Record<string, string>; input?: string }): Promise<RunResult>
  /** Starts a long-running command (mlsctl watch, a script) with binDir first on PATH. */
  start(command: string, args: string[], env?: Record<string, string>): Lines
}

/** An environment without the caller's MLSD_* variables, colour off, `binDir` first on PATH. */
function cleanEnv(binDir: string, env: Record<string, string> = {}): NodeJS.ProcessEnv {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("MLSD_")))
  return { ...base, NO_COLOR: "1", PATH: `${binDir}:${process.env.PATH}`, ...env }
}

export async function buildCtl(t: TestContext): Promise<Ctl> {
  mkdirSync(join(root, ".tmp"), { recursive: true })
  const out = mkdtempSync(join(root, ".tmp", "ctl-"))
  t.after(() => rmSync(out, { recursive: true, force: true }))
  await promisify(execFile)(process.execPath, [join(root, "scripts", "build.mjs"), "--outdir", out])
  const script = join(out, "mlsctl.js")
  const binDir = join(out, "bin")
  mkdirSync(binDir)
  writeFileSync(join(binDir, "mlsctl"), `#!/bin/sh\nexec "${process.execPath}" "${script}" "$@"\n`)
  chmodSync(join(binDir, "mlsctl"), 0o755)
  const started: Lines[] = []
  t.after(() => Promise.all(started.map((l) => l.kill())))

  return {
    binDir,
    run(args, opts = {}) {
      return new Promise((resolve, reject) => {
        const proc = spawn(process.execPath, [script, ...args], { cwd: root, env: cleanEnv(binDir, opts.env) })
        let stdout = ""
        let stderr = ""
        proc.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d))
        proc.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d))
        proc.stdin.end(opts.input ?? "")
        const timer = setTimeout(() => {
          proc.kill("SIGKILL")
          reject(new Error(`mlsctl ${args.join(" ")} did not exit within 60 s: ${stdout}${stderr}`))
        }, 60_000)
        proc.on("close", (code) => {
          clearTimeout(timer)
          resolve({ code, stdout, stderr })
        })
      })
    },
    start(command, args, env) {
      // Its own process group, so a script's whole pipeline can be stopped.
      const proc = spawn(command, args, { cwd: root, env: cleanEnv(binDir, env), detached: true })
      proc.stdin.end()
      const lines: string[] = []
      const waiters = new Set<() => void>()
      const wake = () => waiters.forEach((w) => w())
      let stderr = ""
      createInterface({ input: proc.stdout }).on("line", (l) => (lines.push(l), wake()))
      proc.stderr.setEncoding("utf8").on("data", (d: string) => ((stderr += d), wake()))
      const exited = new Promise<number | string | null>((resolve) =>
        proc.on("close", (code, signal) => (resolve(code ?? signal), wake())),
      )
      /** Resolves with `check()`'s first defined value, re-checked on every line and at exit. */
      const until = <T>(check: () => T | undefined, what: string, timeoutMs: number) =>
        new Promise<T>((resolve, reject) => {
          const w = () => {
            const v = check()
            if (v !== undefined) return done(() => resolve(v))
            if (proc.exitCode !== null || proc.signalCode !== null)
              done(() => reject(new Error(`${command} exited before ${what}: ${lines.join("\n")}\n${stderr}`)))
          }
          const timer = setTimeout(
            () => done(() => reject(new Error(`no ${what} within ${timeoutMs} ms: ${lines.join("\n")}\n${stderr}`))),
            timeoutMs,
          )
          const done = (f: () => void) => (clearTimeout(timer), waiters.delete(w), f())
          waiters.add(w)
          w()
        })
      const l: Lines = {
        proc,
        lines,
        stderr: () => stderr,
        line: (p, timeoutMs = 30_000) => until(() => lines.find(p), "matching line", timeoutMs),
        stderrMatch: (re, timeoutMs = 30_000) =>
          until(() => (re.test(stderr) ? true : undefined), `stderr ${re}`, timeoutMs).then(() => undefined),
        exited,
        async kill() {
          if (proc.exitCode !== null || proc.signalCode !== null) return
          process.kill(-proc.pid!, "SIGTERM")
          await exited
        },
      }
      started.push(l)
      return l
    },
  }
}
