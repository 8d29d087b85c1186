/** mlsctl's global flags and its help texts (`mlsctl --help`, `mlsctl COMMAND --help`), from the command table. */
import { commands, metavar, paramSchema, summaryOf, usageOf, type Command } from "./commands.js"
import { columns } from "./output.js"

export const defaultTimeoutS = 60

interface GlobalFlag {
  long: string
  short?: string
  /** The metavariable of a flag that takes a value. */
  value?: string
  help: string
}

export const globalFlags: readonly GlobalFlag[] = [
  { long: "socket", value: "PATH", help: "the daemon's socket (default: $MLSD_SOCKET, else the profile's, as mlsd)" },
  { long: "profile", value: "NAME", help: "the profile whose daemon to reach (default: $MLSD_PROFILE, else as mlsd)" },
  { long: "json", help: "print results as JSON (one value; watch: one object per line)" },
  { long: "timeout", value: "S", help: `seconds to wait for the daemon's answer (default ${defaultTimeoutS})` },
  { long: "help", short: "h", help: "this text; mlsctl COMMAND --help for a command" },
]

export const exitCodes = `exit status:
  0  success
  1  the daemon answered an error (its code and message on stderr: "mlsctl: pool_exhausted: …")
  2  usage error (unknown command, bad flag, unparsable JSON)
  3  the daemon cannot be reached (or did not answer in time; watch: the daemon went away)`

export function mainUsage(): string {
  const flagRows = globalFlags.map((f) => [
    `  ${f.short ? `-${f.short}, ` : ""}--${f.long}${f.value ? ` ${f.value}` : ""}`,
    f.help,
  ])
  return [
    "usage: mlsctl [GLOBAL FLAGS] COMMAND [ARGS]        (npm run ctl -- …)",
    "",
    "Talks to your mlsd over its socket. Commands:",
    columns(commands.map((c) => [`  ${usageOf(c)}`, summaryOf(c)])),
    "",
    "global flags (anywhere on the line):",
    columns(flagRows),
    "",
    exitCodes,
  ].join("\n")
}

export function commandUsage(c: Command): string {
  const params = [...(c.args ?? []), ...(c.flags ?? [])].map((p) => {
    const name = (c.args ?? []).includes(p) ? metavar(p) : `--${p} ${metavar(p)}`
    return [`  ${name}`, paramSchema(c, p).description ?? ""]
  })
  return [
    `usage: mlsctl [GLOBAL FLAGS] ${usageOf(c)}`,
    "",
    `${summaryOf(c)}${c.method ? ` (${c.method})` : ""}`,
    ...(c.about ? [c.about] : []),
    ...(params.length ? ["", columns(params)] : []),
    "",
    exitCodes,
  ].join("\n")
}

/** The list shown with an unknown command. */
export const commandNames = () => [...new Set(commands.map((c) => c.name.split(" ")[0]))].join(", ")
