/** The input line's slash commands: one parser, one help table (shown by `/help`), no I/O. */

export type Command =
  | { kind: "send"; text: string }
  | { kind: "create"; name: string }
  | { kind: "invite"; users: string[] }
  | { kind: "members" }
  | { kind: "remove"; user: string }
  | { kind: "leave" }
  | { kind: "rotate" }
  | { kind: "rejoin" }
  /** A pending invitation by group name; the oldest one when no name is given. */
  | { kind: "accept"; name: string | undefined }
  | { kind: "decline"; name: string | undefined }
  | { kind: "pool" }
  | { kind: "help" }
  | { kind: "quit" }
  | { kind: "none" }
  | { kind: "error"; message: string }

/** Every command with its argument form and what it does, in `/help` order. */
export const commandHelp = [
  ["/create NAME", "create a group (you are its only member)"],
  ["/invite USER…", "add users to the selected group"],
  ["/members", "who is in the selected group"],
  ["/remove USER", "remove a member from the selected group"],
  ["/leave", "leave the selected group"],
  ["/rotate", "rotate your keys in the selected group"],
  ["/rejoin", "rejoin a group that is out of sync (messages meanwhile stay missing)"],
  ["/accept [NAME]", "join the group of a pending invitation (the oldest one without NAME)"],
  ["/decline [NAME]", "refuse a pending invitation (the oldest one without NAME)"],
  ["/pool", "your KeyPackage pool and who reserved keys"],
  ["/help", "this list"],
  ["/quit", "leave the TUI (the daemon keeps running)"],
] as const

const userPattern = /^[a-z0-9][a-z0-9._-]{0,31}$/

/** Parses one input line. Text not starting with "/" is a message; "//text" sends "/text". */
export function parseCommand(line: string): Command {
  if (line.trim() === "") return { kind: "none" }
  if (!line.startsWith("/")) return { kind: "send", text: line }
  if (line.startsWith("//")) return { kind: "send", text: line.slice(1) }
  const [word = "", ...args] = line.slice(1).trim().split(/\s+/)
  const rest = line.slice(1).trim().slice(word.length).trim()
  const none = (c: Command): Command => (args.length ? { kind: "error", message: `/${word} takes no arguments` } : c)
  const users = (): string[] | string => {
    const bad = args.find((u) => !userPattern.test(u))
    return bad === undefined ? args : `not a user name: ${bad} (a-z, 0-9, . _ -; up to 32)`
  }
  switch (word) {
    case "create":
      return rest ? { kind: "create", name: rest } : { kind: "error", message: "usage: /create NAME" }
    case "invite": {
      if (!args.length) return { kind: "error", message: "usage: /invite USER…" }
      const u = users()
      return typeof u === "string" ? { kind: "error", message: u } : { kind: "invite", users: [...new Set(u)] }
    }
    case "remove": {
      if (args.length !== 1) return { kind: "error", message: "usage: /remove USER" }
      const u = users()
      return typeof u === "string" ? { kind: "error", message: u } : { kind: "remove", user: u[0]! }
    }
    case "accept":
    case "decline":
      return { kind: word, name: rest || undefined }
    case "members":
    case "leave":
    case "rotate":
    case "rejoin":
    case "pool":
    case "help":
    case "quit":
      return none({ kind: word })
    default:
      return { kind: "error", message: `unknown command /${word} (/help lists them)` }
  }
}
