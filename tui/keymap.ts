/** Global keys (the input line handles its own typing): which key does what, in one table. */
import type { Key } from "ink"

export type KeyAction = "nextGroup" | "prevGroup" | "pageUp" | "pageDown" | "closePanel"

/** The keys `/help` lists beside the commands (Esc, which closes a panel, is named in every panel's last line). */
export const keyHelp = [
  ["Tab, Shift-Tab", "next / previous group (also Ctrl-N, Ctrl-P)"],
  ["PgUp, PgDn", "scroll (older messages load)"],
  ["Ctrl-C", "quit (the daemon keeps running)"],
] as const

export function keyAction(input: string, key: Key): KeyAction | undefined {
  if (key.tab) return key.shift ? "prevGroup" : "nextGroup"
  if (key.ctrl && input === "n") return "nextGroup"
  if (key.ctrl && input === "p") return "prevGroup"
  if (key.pageUp) return "pageUp"
  if (key.pageDown) return "pageDown"
  if (key.escape) return "closePanel"
  return undefined
}
