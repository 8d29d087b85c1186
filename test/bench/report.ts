// Shared output of every benchmark: a printed table and test/bench/results/NAME.json.
import { mkdirSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const resultsDir = join(dirname(fileURLToPath(import.meta.url)), "results")

export type Row = Record<string, string | number>

/** Prints `rows` as an aligned table under a title and writes `json` to results/NAME.json. */
export function report(name: string, rows: Row[], json: unknown): void {
  const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))]
  const cell = (v: string | number | undefined) =>
    v === undefined ? "" : typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : v
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)))
  const line = (vals: string[]) => vals.map((v, i) => v.padStart(widths[i] ?? 0)).join("  ")
  console.log(`\n${name}`)
  console.log(line(columns))
  for (const r of rows) console.log(line(columns.map((c) => cell(r[c]))))
  mkdirSync(resultsDir, { recursive: true })
  const file = join(resultsDir, `${name}.json`)
  writeFileSync(file, JSON.stringify(json, null, 2) + "\n")
  console.log(`wrote ${file}`)
}

/** The q-quantile (0..1) of unsorted samples, nearest-rank. */
export function quantile(samples: number[], q: number): number {
  if (samples.length === 0) return NaN
  const sorted = [...samples].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!
}

/** Median of several repeats of a measurement. */
export function median(values: number[]): number {
  return quantile(values, 0.5)
}
