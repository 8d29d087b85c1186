/**
 * `npm start`: the embedded defaults in one command. Runs a local server (data/server.db on
 * 127.0.0.1:4000) and this user's daemon against it, registers the profile on first run, waits
 * for its KeyPackage pool to fill, prints where everything is, and stops both on Ctrl-C.
 */
import { spawn, type ChildProcess } from "node:child_process"
import { once } from "node:events"
import { userInfo } from "node:os"
import { dirname, join } from "node:path"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import { DaemonClient } from "../daemon-client/index.js"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const usage = `usage: npm start -- [--port PORT] [--profile NAME]

Starts mls-server on 127.0.0.1:PORT (default 4000, database data/server.db) and mlsd for
profile NAME (default: your user name, lower-cased) connected to it, registers NAME on first
run, and waits until its KeyPackage pool is full. Ctrl-C stops both.`

let flags
try {
  flags = parseArgs({
    options: {
      port: { type: "string", default: "4000" },
      profile: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  }).values
} catch (err) {
  console.error(`${(err as Error).message}\n${usage}`)
  process.exit(2)
}
if (flags.help) {
  console.log(usage)
  process.exit(0)
}
const profile =
  flags.profile ??
  userInfo()
    .username.toLowerCase()
    .replace(/[^a-z0-9._-]/g, "-")
const children: ChildProcess[] = []

/** Starts a TypeScript entry point and resolves with the first stdout line matching `ready`. */
async function launch(entry: string, args: string[], ready: RegExp): Promise<RegExpExecArray> {
  const child = spawn(process.execPath, ["--import", "tsx", join(root, entry), ...args], {
    cwd: root,
    stdio: ["ignore", "pipe", "inherit"],
  })
  children.push(child)
  return new Promise((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`${entry} exited with status ${code}`)))
    createInterface({ input: child.stdout! }).on("line", (line) => {
      const m = ready.exec(line)
      if (m) resolve(m)
    })
  })
}

async function stopAll(code: number): Promise<never> {
  for (const c of children) if (c.exitCode === null) c.kill("SIGTERM")
  await Promise.all(children.filter((c) => c.exitCode === null).map((c) => once(c, "exit")))
  process.exit(code)
}
process.on("SIGINT", () => void stopAll(0))
process.on("SIGTERM", () => void stopAll(0))

try {
  const [, url] = await launch("server/main.ts", ["--port", flags.port!, "--log-level", "warn"], /^listening on (\S+)/)
  const [, socket] = await launch(
    "daemon/main.ts",
    ["--profile", profile, "--server", url!, "--log-level", "warn"],
    /listening on (\S+)/,
  )
  const client = await DaemonClient.connect(socket!)
  await client.call("events.subscribe", {})
  let me = await client.call("identity.get")
  if (!me.registered) me = await client.call("identity.register", { username: profile, server: url! })
  let pool = await client.call("pool.status")
  if (pool.available < pool.policy.target) {
    pool = (await client.next("pool.changed", (p) => p.status.available >= p.status.policy.target, 60_000)).status
  }
  console.log(`server   ${url}  (data/server.db)
daemon   profile ${profile}, socket ${socket}
user     ${me.username}, signature key ${me.signatureKey}
pool     ${pool.available} available, last resort ${pool.lastResort ? "yes" : "no"}, health ${pool.health}
Ctrl-C stops both.`)
  client.close()
} catch (err) {
  console.error(`start: ${(err as Error).message}`)
  await stopAll(1)
}
