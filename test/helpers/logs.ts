/** Checks on the JSON log lines (pino) that the server and the daemon write to stderr. */
import assert from "node:assert/strict"

/**
 * Each line is one JSON object with no key twice in any object. JSON.parse keeps only the last of two equal keys, so a
 * line that re-serialises shorter than it came had a duplicate (pino writes compact JSON, as JSON.stringify does).
 */
export function assertJsonLogLines(lines: string[]): Record<string, unknown>[] {
  assert.ok(lines.length > 0, "there are log lines")
  return lines.map((line) => {
    let parsed: Record<string, unknown>
    try {
      parsed = JSON.parse(line) as Record<string, unknown>
    } catch {
      assert.fail(`not a JSON log line: ${line}`)
    }
    assert.equal(JSON.stringify(parsed).length, line.length, `no key twice: ${line}`)
    return parsed
  })
}
