// `npm run bench -- NAME [NAME…] [--FLAG…]`: runs test/bench/NAME.ts (its default export) for each name, handing it
// the arguments from the first flag on (e.g. `groups --sizes 1000`); with no name, lists the benchmarks there are.
import { readdirSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const here = dirname(fileURLToPath(import.meta.url))
const available = readdirSync(here)
  .filter((f) => f.endsWith(".ts") && !["run.ts", "report.ts"].includes(f) && !f.startsWith("_"))
  .map((f) => f.slice(0, -3))
  .sort()

const args = process.argv.slice(2)
const firstFlag = args.findIndex((a) => a.startsWith("-"))
const names = firstFlag === -1 ? args : args.slice(0, firstFlag)
const flags = firstFlag === -1 ? [] : args.slice(firstFlag)
if (names.length === 0) {
  console.log(`usage: npm run bench -- NAME [NAME…]\nbenchmarks: ${available.join(", ")}`)
  process.exit(2)
}
for (const name of names) {
  if (!available.includes(name)) {
    console.error(`unknown benchmark "${name}"; benchmarks: ${available.join(", ")}`)
    process.exit(2)
  }
}
for (const name of names) {
  const mod = (await import(join(here, `${name}.ts`))) as { default: (flags: string[]) => Promise<void> }
  await mod.default(flags)
}
