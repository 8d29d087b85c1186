import assert from "node:assert/strict"
import { spawn, type ChildProcess } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { describe, it, type TestContext } from "node:test"
import { fileURLToPath } from "node:url"
import { spawnDaemon } from "../helpers/daemon.js"

const contender = join(dirname(fileURLToPath(import.meta.url)), "..", "helpers", "lockContender.ts")

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), "mlsd-lock-"))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Resolves with the child's next stdout line (bounded: a child that dies or hangs fails the test). */
function nextLine(proc: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = ""
    const timer = setTimeout(() => done(new Error("no line from the contender within 20 s")), 20_000)
    const onData = (d: Buffer) => {
      buf += d.toString()
      const nl = buf.indexOf("\n")
      if (nl >= 0) done(undefined, buf.slice(0, nl))
    }
    const onExit = (code: number | null) => done(new Error(`contender exited (${code})`))
    const done = (err?: Error, line?: string) => {
      clearTimeout(timer)
      proc.stdout!.off("data", onData)
      proc.off("exit", onExit)
      if (err) reject(err)
      else resolve(line!)
    }
    proc.stdout!.on("data", onData)
    proc.on("exit", onExit)
  })
}

async function contenders(n: number, dataDir: string): Promise<ChildProcess[]> {
  const procs = Array.from({ length: n }, () =>
    spawn(process.execPath, ["--import", "tsx", contender, dataDir], { stdio: ["pipe", "pipe", "inherit"] }),
  )
  for (const p of procs) assert.equal(await nextLine(p), "ready")
  return procs
}

function kill(procs: ChildProcess[]): Promise<unknown> {
  return Promise.all(
    procs.map((p) =>
      p.exitCode !== null || p.signalCode !== null
        ? undefined
        : new Promise((resolve) => {
            p.once("exit", resolve)
            p.kill("SIGKILL")
          }),
    ),
  )
}

describe("profile lock", () => {
  it("lets exactly one of two contenders take a stale lock at the same instant, 20 times", async (t) => {
    const dir = tempDir(t)
    // A stale lock: its owner was killed.
    const [first] = await contenders(1, dir)
    first!.stdin!.write(`${Date.now()}\n`)
    assert.equal(await nextLine(first!), "got")
    await kill([first!])

    for (let round = 0; round < 20; round++) {
      const procs = await contenders(2, dir)
      t.after(() => kill(procs))
      const at = Date.now() + 100
      for (const p of procs) p.stdin!.write(`${at}\n`)
      const answers = await Promise.all(procs.map(nextLine))
      assert.equal(answers.filter((a) => a === "got").length, 1, `round ${round}: ${answers.join(" | ")}`)
      assert.match(
        answers.find((a) => a !== "got")!,
        /^refused another daemon( \(pid \d+\))? serves this profile$/,
      )
      await kill(procs) // the winner dies holding it: stale again for the next round
    }
  })

  it("serves with exactly one of two daemons started at once on a stale lock, 20 times", async (t) => {
    const dir = tempDir(t)
    const dataDir = join(dir, "data")
    const killed = await spawnDaemon({ dataDir, socketPath: join(dir, "0.sock"), testClock: false })
    assert.equal(await killed.stop("SIGKILL"), "SIGKILL")
    rmSync(killed.tmp, { recursive: true, force: true })

    for (let round = 0; round < 20; round++) {
      const starts = await Promise.allSettled(
        ["a", "b"].map((s) => spawnDaemon({ dataDir, socketPath: join(dir, `${round}${s}.sock`), testClock: false })),
      )
      const served = starts.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []))
      const refused = starts.flatMap((s) => (s.status === "rejected" ? [String(s.reason)] : []))
      for (const d of served) t.after(() => d.stop("SIGKILL"))
      assert.equal(served.length, 1, `round ${round}: ${refused.join(" | ")}`)
      assert.match(refused[0]!, /exited \(1\).*another daemon( \(pid \d+\))? serves this profile/s)
      const status = await served[0]!.client.call("daemon.status")
      assert.equal(status.pid, served[0]!.proc.pid)
      assert.equal(await served[0]!.stop("SIGKILL"), "SIGKILL")
      rmSync(served[0]!.tmp, { recursive: true, force: true })
    }
  })
})
