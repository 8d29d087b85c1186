/**
 * ink-testing-library helpers: frames without colour codes, and a bounded wait for a frame that matches. Import this
 * module before ink: it turns colours on (chalk decides when it loads), so tests can check them in `lastFrame()`.
 */
import type { render } from "ink-testing-library"
import { stripVTControlCharacters } from "node:util"

process.env.FORCE_COLOR ??= "1"

type Rendered = ReturnType<typeof render>

export function frame(r: Rendered): string {
  return stripVTControlCharacters(r.lastFrame() ?? "")
}

/** Resolves with the first frame `predicate` accepts; rejects after `timeoutMs` with the last frame. */
export async function waitForFrame(r: Rendered, predicate: (f: string) => boolean, timeoutMs = 5_000): Promise<string> {
  for (const end = Date.now() + timeoutMs; ; await new Promise((res) => setTimeout(res, 10))) {
    const f = frame(r)
    if (predicate(f)) return f
    if (Date.now() > end) throw new Error(`no matching frame within ${timeoutMs} ms; last frame:\n${f}`)
  }
}

/** Writes keys to the component's stdin, each on its own turn so Ink reads them as separate key presses. */
export async function press(r: Rendered, ...keys: string[]): Promise<void> {
  for (const k of keys) {
    r.stdin.write(k)
    await new Promise((res) => setImmediate(res))
  }
}
