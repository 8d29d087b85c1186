// `npm run bench -- NAME [NAME…]`: runs test/bench/NAME.ts (its default export) for each name;
// with no name, lists the benchmarks there are.
import { readdirSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const here = dirname(fileURLToPath(import.meta.url))
const available = readdirSync(here)
  .filter((f) => f.endsWith(".ts") && !["run.ts", "report.ts"].includes(f) && !f.startsWith("_"))
  .map((f) => f.slice(0, -3))
  .sort()

const names = process.argv.slice(2)
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
  const mod = (await import(join(here, `${name}.ts`))) as { default: () => Promise<void> }
  await mod.default()
}
