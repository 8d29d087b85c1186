/**
 * Runs the TUI on this terminal against a daemon's socket until /quit or Ctrl-C. `scripts/start.ts` (npm start,
 * the `mls-chat` bin) calls `runTui` once the daemon answers; the daemon keeps running after the TUI ends.
 */
import { render } from "ink"
import { App } from "./App.js"

export async function runTui(socketPath: string): Promise<void> {
  // The alternate screen keeps the shell's scrollback clean and gives the layout the whole window.
  process.stdout.write("\x1b[?1049h")
  try {
    const app = render(<App socketPath={socketPath} />, { exitOnCtrlC: true })
    await app.waitUntilExit()
  } finally {
    process.stdout.write("\x1b[?1049l")
  }
}
