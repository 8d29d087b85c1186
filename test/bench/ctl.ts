/**
 * ctl: how long a script waits for one `mlsctl --json status` against a running daemon (bin/mlsctl as shipped, after
 * `npm run build`), next to `node -e 0` in the same run, alternating, so both see the same machine load. The target
 * is at most 3× the node floor. Writes {"median_ms", "node_floor_ms"}.
 */
import { execFileSync, spawnSync } from "node:child_process"
import { rmSync } from "node:fs"
import { join } from "node:path"
import { root } from "../helpers/ctl.js"
import { spawnDaemon } from "../helpers/daemon.js"
import { median, quantile, report } from "./report.js"

const runs = Number(process.env.CTL_RUNS ?? 20)

/** Wall milliseconds of one run of `command`, which must succeed. */
function wall(command: string, args: string[], env?: NodeJS.ProcessEnv): number {
  const t0 = performance.now()
  const r = spawnSync(command, args, { env, stdio: ["ignore", "ignore", "pipe"] })
  const ms = performance.now() - t0
  if (r.status !== 0) throw new Error(`${command} ${args.join(" ")} exited ${r.status}: ${r.stderr}`)
  return ms
}

export default async function ctl(): Promise<void> {
  execFileSync(process.execPath, [join(root, "scripts", "build.mjs")], { stdio: "inherit" })
  const d = await spawnDaemon({ testClock: false })
  try {
    const mlsctl = join(root, "bin", "mlsctl")
    const env = { ...process.env, MLSD_SOCKET: d.socketPath }
    wall(mlsctl, ["--json", "status"], env) // warm the file cache
    const ctlMs: number[] = []
    const nodeMs: number[] = []
    for (let i = 0; i < runs; i++) {
      ctlMs.push(wall(mlsctl, ["--json", "status"], env))
      nodeMs.push(wall(process.execPath, ["-e", "0"]))
    }
    const medianMs = Math.round(median(ctlMs))
    const floorMs = Math.round(median(nodeMs))
    report(
      "ctl",
      [
        { command: "mlsctl --json status", median_ms: medianMs, p90_ms: Math.round(quantile(ctlMs, 0.9)), runs },
        { command: "node -e 0", median_ms: floorMs, p90_ms: Math.round(quantile(nodeMs, 0.9)), runs },
        { command: "ratio (target <= 3)", median_ms: Number((medianMs / floorMs).toFixed(2)) },
      ],
      { median_ms: medianMs, node_floor_ms: floorMs },
    )
  } finally {
    await d.stop()
    rmSync(d.tmp, { recursive: true, force: true })
  }
}
