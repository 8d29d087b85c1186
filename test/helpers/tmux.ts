/**
 * A pseudo-terminal for end-to-end tests of the TUI: a tmux server of its own (`-L`), one session of a fixed size,
 * keys in through `send-keys`, the screen out through `capture-pane`. tmux is required: .ci/run installs it, and a
 * test fails (not skips) without it.
 */
import { execFileSync, spawnSync } from "node:child_process"
import { randomBytes } from "node:crypto"

export interface Terminal {
  /** The screen as text, one line per row. */
  screen(): string
  /** Types `text` literally, then presses Enter unless `enter` is false. */
  type(text: string, enter?: boolean): void
  /** Resolves with the first screen `predicate` accepts; rejects after `timeoutMs` with the last screen. */
  waitFor(predicate: (screen: string) => boolean, timeoutMs?: number): Promise<string>
  kill(): void
}

export function requireTmux(): void {
  const r = spawnSync("tmux", ["-V"], { encoding: "utf8" })
  if (r.error || r.status !== 0) throw new Error("tmux is not installed: these tests need it (.ci/run installs it)")
}

/** Runs `argv` in a new `columns`x`rows` terminal with `env` added; the pane stays after it exits. */
export function openTerminal(argv: string[], env: Record<string, string>, columns = 80, rows = 24): Terminal {
  requireTmux()
  const name = `mls-test-${randomBytes(4).toString("hex")}`
  const tmux = (...args: string[]) => execFileSync("tmux", ["-L", name, ...args], { encoding: "utf8" })
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`
  // The shell line prints how the program ended and keeps the pane open for the last screen.
  const line = `${argv.map(quote).join(" ")}; echo "[exited $?]"; sleep 86400`
  const envArgs = Object.entries(env).flatMap(([k, v]) => ["-e", `${k}=${v}`])
  tmux("-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", String(columns), "-y", String(rows), ...envArgs, line)
  const term: Terminal = {
    screen: () => tmux("capture-pane", "-p", "-t", "t"),
    type(text, enter = true) {
      tmux("send-keys", "-t", "t", "-l", text)
      if (enter) tmux("send-keys", "-t", "t", "Enter")
    },
    async waitFor(predicate, timeoutMs = 60_000) {
      for (const end = Date.now() + timeoutMs; ; await new Promise((r) => setTimeout(r, 200))) {
        const s = term.screen()
        if (predicate(s)) return s
        if (Date.now() > end) throw new Error(`the screen did not show what was expected within ${timeoutMs} ms:\n${s}`)
      }
    },
    kill() {
      spawnSync("tmux", ["-L", name, "kill-server"])
    },
  }
  return term
}
