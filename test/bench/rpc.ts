/** rpc: `daemon.status` calls per second over the daemon's Unix socket, one at a time and with 32 in flight. */
import { rmSync } from "node:fs"
import { spawnDaemon } from "../helpers/daemon.js"
import { median, report } from "./report.js"

const seconds = Number(process.env.RPC_SECONDS ?? 3)

export default async function rpc(): Promise<void> {
  const d = await spawnDaemon({ testClock: false, validate: false })
  try {
    const c = d.client
    for (let i = 0; i < 2000; i++) await c.call("daemon.status") // warm-up
    const sequential = []
    const pipelined = []
    for (let run = 0; run < 3; run++) {
      let calls = 0
      let t0 = performance.now()
      const end = t0 + (seconds * 1000) / 2
      while (performance.now() < end) {
        await c.call("daemon.status")
        calls++
      }
      sequential.push(calls / ((performance.now() - t0) / 1000))

      calls = 0
      t0 = performance.now()
      const stopAt = t0 + (seconds * 1000) / 2
      await Promise.all(
        Array.from({ length: 32 }, async () => {
          while (performance.now() < stopAt) {
            await c.call("daemon.status")
            calls++
          }
        }),
      )
      pipelined.push(calls / ((performance.now() - t0) / 1000))
    }
    const seq = Math.round(median(sequential))
    const pipe = Math.round(median(pipelined))
    report(
      "rpc",
      [
        { measure: "daemon.status, sequential, calls/s", value: seq },
        { measure: "daemon.status, 32 in flight, calls/s", value: pipe },
      ],
      { sequential_per_s: seq, pipelined_per_s: pipe },
    )
  } finally {
    await d.stop()
    rmSync(d.tmp, { recursive: true, force: true })
  }
}
