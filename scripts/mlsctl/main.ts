/**
 * mlsctl: the scripting CLI over the daemon's socket. A thin client: no keys, no state, nothing but daemon-client
 * calls. Exit status 0 success, 1 the daemon answered an error, 2 usage, 3 the daemon cannot be reached.
 */
import { createInterface } from "node:readline"
import { isatty } from "node:tty"
import { parseArgs, type ParseArgsConfig } from "node:util"
import { DaemonClient, DaemonError } from "../../daemon-client/index.js"
import { profilePaths } from "../../daemon/paths.js"
import { commands, flagValue, Unreachable, UsageError, usageOf, type Command, type Context } from "./commands.js"
import { commandNames, commandUsage, defaultTimeoutS, globalFlags, mainUsage } from "./usage.js"

/** Names of the standard JSON-RPC errors, which carry no snake_case code of their own. */
const standardCodes: Record<number, string> = {
  [-32700]: "parse_error",
  [-32600]: "invalid_request",
  [-32601]: "method_not_found",
  [-32602]: "invalid_params",
}

const commandFlags = [...new Set(commands.flatMap((c) => c.flags ?? []))]

/**
 * A group id is base64url, so one in 64 starts with "-"; a word of that shape (longer than any flag cluster) is
 * a positional. parseArgs would call it an unknown option, so it is hidden from parseArgs and put back after.
 */
const dashedGroupId = /^-[A-Za-z0-9_-]{21,}$/

function parse(argv: string[]) {
  const hidden = new Map<string, string>()
  const args = argv.map((word, i) => {
    if (!dashedGroupId.test(word)) return word
    const stand = `\u0000${i}`
    hidden.set(stand, word)
    return stand
  })
  const options: ParseArgsConfig["options"] = Object.fromEntries([
    ...globalFlags.map((f) => [f.long, { type: f.value ? "string" : "boolean", ...(f.short && { short: f.short }) }]),
    ...commandFlags.map((f) => [f, { type: "string" }]),
  ])
  try {
    const { values, positionals } = parseArgs({ args, options, allowPositionals: true, strict: true })
    const restored = positionals.map((word) => hidden.get(word) ?? word)
    return { values: values as Record<string, string | boolean | undefined>, positionals: restored }
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
}

/** The command the positionals name (`pool list` before `pool`), and the words after it. */
function resolve(words: string[]): { command: Command; rest: string[] } | undefined {
  const two = commands.find((c) => c.name === `${words[0]} ${words[1]}`)
  if (two) return { command: two, rest: words.slice(2) }
  const one = commands.find((c) => c.name === words[0])
  return one && { command: one, rest: words.slice(1) }
}

/** The method params from the positionals and flags; the words left over go to the command. */
function paramsOf(command: Command, values: Record<string, unknown>, words: string[]) {
  const params: Record<string, unknown> = {}
  const args = command.args ?? []
  if (words.length < args.length) throw new UsageError(`usage: mlsctl ${usageOf(command)}`)
  args.forEach((a, i) => (params[a] = words[i]))
  const rest = words.slice(args.length)
  if (rest.length > 0 && !command.rest) throw new UsageError(`${command.name}: unexpected argument "${rest[0]}"`)
  for (const f of commandFlags) {
    const text = values[f]
    if (typeof text !== "string") continue
    if (!command.flags?.includes(f)) throw new UsageError(`${command.name} has no flag --${f}`)
    params[f] = flagValue(command, f, text)
  }
  return { params, rest }
}

function socketOf(values: Record<string, unknown>) {
  try {
    const flags = { profile: values.profile as string | undefined, socket: values.socket as string | undefined }
    const paths = profilePaths(flags, process.env)
    const named = flags.socket !== undefined || process.env.MLSD_SOCKET !== undefined
    return { ...paths, start: named ? `mlsd --socket ${paths.socketPath}` : `mlsd --profile ${paths.profile}` }
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
}

function context(values: Record<string, unknown>, socket: { socketPath: string; start: string }): Context {
  const where = `mlsd at ${socket.socketPath}`
  const json = values.json === true
  const timeoutText = (values.timeout as string | undefined) ?? String(defaultTimeoutS)
  const timeoutS = Number(timeoutText)
  if (!(timeoutS > 0)) throw new UsageError(`--timeout must be a number of seconds > 0, not "${timeoutText}"`)
  const bounded = <T>(what: Promise<T>): Promise<T> => {
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Unreachable(`${where} did not answer within ${timeoutS} s`)), timeoutS * 1000)
    })
    return Promise.race([what, late]).finally(() => clearTimeout(timer))
  }
  let connecting: Promise<DaemonClient> | undefined
  const client = () =>
    (connecting ??= bounded(DaemonClient.connect(socket.socketPath)).catch((err: NodeJS.ErrnoException) => {
      if (err instanceof Unreachable) throw err
      throw new Unreachable(
        `cannot reach ${where} (${err.code ?? err.message}): is it running? ` +
          `Start it with "${socket.start}" (or npm start), or name its socket with --socket / MLSD_SOCKET`,
      )
    }))
  const out = (line: string) => void process.stdout.write(line + "\n")
  return {
    json,
    client,
    out,
    async call(method, params) {
      const c = await client()
      return bounded(c.request(method, params)).catch((err: unknown) => {
        // Not an answer: the connection closed under the call.
        if (err instanceof DaemonError || err instanceof Unreachable) throw err
        throw new Unreachable(`${where} went away (${(err as Error).message})`)
      })
    },
    show(result, human) {
      const text = json ? JSON.stringify(result) : human(result)
      if (text !== "") out(text)
    },
    stdinLines: () => createInterface({ input: process.stdin, crlfDelay: Infinity }),
    async stdinText() {
      let text = ""
      for await (const chunk of process.stdin) text += String(chunk)
      return text
    },
    // isatty, not process.stdin: touching process.stdin would open a stream on a stdin the command never reads.
    stdinIsTTY: isatty(0),
    close: () =>
      void connecting?.then(
        (c) => c.close(),
        () => undefined,
      ),
  }
}

/** The error's line on stderr and the exit status. */
function failure(err: unknown, json: boolean): [string, number] {
  if (err instanceof UsageError) return [`mlsctl: ${err.message}\n(mlsctl --help lists commands and flags)`, 2]
  if (err instanceof Unreachable) return [`mlsctl: ${err.message}`, 3]
  if (err instanceof DaemonError) {
    if (json) return [JSON.stringify({ code: err.code, message: err.message, data: err.data }), 1]
    const code = err.appCode ?? standardCodes[err.code] ?? String(err.code)
    const issues = (err.data as { issues?: { path: string; message: string }[] } | undefined)?.issues ?? []
    const detail = issues.map((i) => `${i.path}: ${i.message}`).join("; ")
    return [`mlsctl: ${code}: ${err.message}${detail ? ` (${detail})` : ""}`, 1]
  }
  return [`mlsctl: ${err instanceof Error ? err.message : String(err)}`, 1]
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv)
  const found = resolve(positionals)
  if (!found) {
    if (positionals.length === 0 && values.help) return (process.stdout.write(mainUsage() + "\n"), 0)
    if (positionals.length === 0) throw new UsageError(`a COMMAND is needed: ${commandNames()}`)
    throw new UsageError(`unknown command "${positionals[0]}"; commands: ${commandNames()}`)
  }
  if (values.help) return (process.stdout.write(commandUsage(found.command) + "\n"), 0)
  const { params, rest } = paramsOf(found.command, values, found.rest)
  const ctx = context(values, socketOf(values))
  try {
    await found.command.run(ctx, params, rest)
    return 0
  } finally {
    ctx.close()
  }
}

// A closed pipe (mlsctl … | head) ends the output, not in a crash.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(0)
  throw err
})
let json = false
try {
  json = process.argv.includes("--json")
  process.exitCode = await main(process.argv.slice(2))
} catch (err) {
  const [line, code] = failure(err, json)
  process.stderr.write(line + "\n")
  process.exitCode = code
}
