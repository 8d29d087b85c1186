/** Starts `server/main.ts` as a child process on a free loopback port: for benchmarks, and for tests that kill it. */
import { spawn, type ChildProcess } from "node:child_process"
import { once } from "node:events"
import { dirname, join } from "node:path"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..")

export interface ServerProcess {
  url: string
  child: ChildProcess
  /** Every line the server wrote to stdout (only "listening on …"), as it arrives. */
  output: string[]
  /** Every line the server wrote to stderr (its pino log), as it arrives. */
  log: string[]
  stop(): Promise<void>
}

export async function spawnServer(args: string[]): Promise<ServerProcess> {
  // BENCH_SERVER_NODE_ARGS (e.g. "--cpu-prof") profiles the server under load.
  const nodeArgs = process.env.BENCH_SERVER_NODE_ARGS?.split(" ").filter(Boolean) ?? []
  const serverArgs = [...nodeArgs, "--import", "tsx", join(root, "server/main.ts"), "--port", "0", ...args]
  const child = spawn(process.execPath, serverArgs, {
    cwd: root,
    stdio: ["ignore", "pipe", "pipe"],
  })
  const lines = createInterface({ input: child.stdout! })
  const output: string[] = []
  const log: string[] = []
  createInterface({ input: child.stderr! }).on("line", (line) => log.push(line))
  const url = await new Promise<string>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`server exited with ${code} before listening`)))
    lines.on("line", (line) => {
      output.push(line)
      const m = /^listening on (\S+)/.exec(line)
      if (m) resolve(m[1]!)
    })
  })
  return {
    url,
    child,
    output,
    log,
    async stop() {
      // Exited already (by itself, or killed: a signal leaves exitCode null).
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill("SIGTERM")
      await once(child, "close") // exited, and its stdout and stderr read to the end
    },
  }
}

/** A server for benchmarks: the database at `dbPath`, warnings only, every rate limit out of the way; `args` added. */
export function spawnBenchServer(dbPath: string, args: string[] = []): Promise<ServerProcess> {
  const unlimited = [
    ...["reserve", "reserve-target", "reserve-stranger", "reserve-ip", "register-ip", "challenge-ip", "post"].flatMap(
      (b) => [`--${b}-burst`, "1e9", `--${b}-rate`, "1e9"],
    ),
    ...["--max-challenges", "1000000"],
  ]
  return spawnServer(["--db", dbPath, "--log-level", "warn", ...unlimited, ...args])
}

/** Runs a TypeScript file as a child process, hands it `input` as JSON on stdin, returns its stdout parsed. */
export async function runChild<T>(file: string, input: unknown): Promise<T> {
  const child = spawn(process.execPath, ["--import", "tsx", file], { cwd: root, stdio: ["pipe", "pipe", "inherit"] })
  child.stdin.end(JSON.stringify(input))
  let out = ""
  child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d))
  const [code] = (await once(child, "exit")) as [number]
  if (code !== 0) throw new Error(`${file} exited with ${code}`)
  return JSON.parse(out) as T
}

/** Runs `server/main.ts` with `args` expecting it to exit by itself (a refusal); resolves with its code and stderr. */
export async function runServer(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, ["--import", "tsx", join(root, "server/main.ts"), ...args], {
    cwd: root,
    stdio: ["ignore", "ignore", "pipe"],
  })
  let stderr = ""
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d))
  const [code] = (await once(child, "exit")) as [number | null]
  return { code, stderr }
}
