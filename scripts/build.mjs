// `npm run build` (and npm's `prepare`, so `npm ci` builds): transpiles every .ts/.tsx/.js of the source folders one to
// one into dist/ with esbuild, so the bins start as plain JavaScript with no compile at start-up. The folders are
// tsconfig.json's `include` minus test/, and a listed folder that does not exist yet is skipped. Plain JavaScript
// itself because it must run before anything is built and without devDependencies (`npm ci --omit=dev`).
// mlsctl is also bundled into one file (dist/mlsctl.js): scripts run it once per message, and loading TypeBox's
// hundreds of modules one by one cost more than node's own start. `--outdir DIR` builds elsewhere (tests build a fresh
// copy under .tmp/).
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { dirname, join, relative, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import process from "node:process"
import { parseArgs } from "node:util"
import { build } from "esbuild"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const { values } = parseArgs({ options: { outdir: { type: "string" } } })
const outdir = resolve(root, values.outdir ?? "dist")

/** @returns {Generator<string>} */
function* sources(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, e.name)
    if (e.isDirectory()) yield* sources(path)
    // Plain .js sources (crypto's worker) go along so the built files can import them.
    else if (/\.(tsx?|js)$/.test(e.name) && !e.name.endsWith(".d.ts")) yield path
  }
}

const tsconfig = JSON.parse(readFileSync(join(root, "tsconfig.json"), "utf8"))
const folders = tsconfig.include.filter((f) => f !== "test" && existsSync(join(root, f)))
const entryPoints = folders.flatMap((f) => [...sources(join(root, f))])

rmSync(outdir, { recursive: true, force: true })
await build({
  entryPoints,
  outdir,
  outbase: root,
  format: "esm",
  platform: "node",
  target: "node20",
  // .tsx (tui/) with React 17+'s automatic runtime, as tsconfig's "jsx": "react-jsx".
  jsx: "automatic",
  logLevel: "warning",
})
await build({
  entryPoints: [join(root, "scripts/mlsctl/main.ts")],
  outfile: join(outdir, "mlsctl.js"),
  bundle: true,
  format: "esm",
  platform: "node",
  target: "node20",
  logLevel: "warning",
})
process.stdout.write(
  `built ${entryPoints.length} files of ${folders.join(", ")} into ${relative(root, outdir) || "."}, and mlsctl.js\n`,
)
