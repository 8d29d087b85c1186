/** Human output of mlsctl: aligned columns, local times, pool health in words, colour only on a TTY without NO_COLOR. */
import type { MethodResult } from "../../rpc-schema/daemon/index.js"

type PoolStatus = MethodResult<"pool.status">

const useColour = process.stdout.isTTY === true && !process.env.NO_COLOR
const paint = (code: number) => (text: string) => (useColour ? `\x1b[${code}m${text}\x1b[0m` : text)
export const bold = paint(1)
export const dim = paint(2)
const green = paint(32)
const yellow = paint(33)
const red = paint(31)

/** Rows as columns separated by two spaces, each padded to its widest cell. */
export function columns(rows: readonly (readonly string[])[]): string {
  const widths: number[] = []
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)))
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join("  ")
        .trimEnd(),
    )
    .join("\n")
}

/** A table under a bold header row; `empty` when there are no rows. */
export function table(header: readonly string[], rows: readonly (readonly string[])[], empty: string): string {
  if (rows.length === 0) return empty
  const [head = "", ...rest] = columns([header, ...rows]).split("\n")
  return [bold(head), ...rest].join("\n")
}

const two = (n: number) => String(n).padStart(2, "0")

/** Milliseconds since the epoch as a local `YYYY-MM-DD HH:MM:SS`. */
export function localTime(ms: number): string {
  const d = new Date(ms)
  const date = `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}`
  return `${date} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`
}

/** A duration in its two largest units: `3d 4h`, `12m 5s`, `40s`. */
export function duration(ms: number): string {
  const s = Math.floor(ms / 1000)
  const parts: [number, string][] = [
    [Math.floor(s / 86400), "d"],
    [Math.floor(s / 3600) % 24, "h"],
    [Math.floor(s / 60) % 60, "m"],
    [s % 60, "s"],
  ]
  const first = parts.findIndex(([n]) => n > 0)
  if (first === -1) return "0s"
  return parts
    .slice(first, first + 2)
    .filter(([n]) => n > 0)
    .map(([n, u]) => `${n}${u}`)
    .join(" ")
}

const healthColour = { good: green, low: yellow, critical: red, exhausted: red, degraded: yellow } as const

/** Pool health as a word with its counts: `good: 32 available, 0 reserved, 2 expiring soon, last resort ready`. */
export function poolLine(p: PoolStatus): string {
  const word = (healthColour[p.health] ?? ((s: string) => s))(p.health)
  const figures = [`${p.available} available`, `${p.reserved} reserved`, `${p.expiringSoon} expiring soon`]
  figures.push(p.lastResort ? "last resort ready" : "no last-resort key")
  return `${word}: ${figures.join(", ")}`
}

/** The pool in lines of `label  value`. */
export function poolStatus(p: PoolStatus): string {
  const rows: string[][] = [
    ["health", poolLine(p)],
    [
      "keys",
      `${p.spent} spent, ${p.expired} expired, ${p.consumed} consumed, ${p.created} pending, ${p.failed} failed`,
    ],
    ["synced", p.synced ? "yes (the server's digest matches)" : "no"],
  ]
  if (p.lastPass) {
    const pass = p.lastPass
    const what = `${pass.generated} generated, ${pass.uploaded} uploaded, ${pass.withdrawn} withdrawn`
    rows.push(["last pass", `${localTime(pass.finishedAt)} ${pass.ok ? "ok" : red("failed")} (${what})`])
  }
  if (p.lastError) rows.push(["last error", red(`${p.lastError.code}: ${p.lastError.message}`)])
  if (p.nextRetryAt !== null) rows.push(["next retry", localTime(p.nextRetryAt)])
  if (p.running) rows.push(["running", "a maintenance pass is running"])
  return columns(rows)
}

/** A short form of a long base64url id or key, for tables: its first 12 characters. */
export const short = (id: string): string => (id.length > 14 ? `${id.slice(0, 12)}…` : id)
