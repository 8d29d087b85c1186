// The ts-mls patches cannot vanish silently: `postinstall` fails when a patch does not apply, and the server and the
// daemon refuse to start on a ts-mls without the fixes. Run in a copy of the project (sources, patches/, node_modules
// linked to ours) whose own ts-mls has had the patches taken off again by `patch-package --reverse`.
import assert from "node:assert/strict"
import { spawn, spawnSync } from "node:child_process"
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { createInterface } from "node:readline"
import { after, before, describe, it } from "node:test"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..")
const postinstall: string = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).scripts.postinstall

/** A copy of the project in a temp dir: its own ts-mls (a copy), every other package a link to ours. */
function projectCopy(): string {
  const dir = mkdtempSync(join(tmpdir(), "patch-guard-"))
  // Every source folder (tsconfig's `include` but test/), so a folder the processes come to import is copied too.
  const sources = (JSON.parse(readFileSync(join(root, "tsconfig.json"), "utf8")).include as string[]).filter(
    (f) => f !== "test",
  )
  for (const entry of ["package.json", "tsconfig.json", "patches", ...sources])
    cpSync(join(root, entry), join(dir, entry), { recursive: true })
  mkdirSync(join(dir, "node_modules"))
  for (const name of readdirSync(join(root, "node_modules"))) {
    if (name === "ts-mls" || name.startsWith(".")) continue
    symlinkSync(join(root, "node_modules", name), join(dir, "node_modules", name))
  }
  cpSync(join(root, "node_modules", "ts-mls"), join(dir, "node_modules", "ts-mls"), { recursive: true })
  return dir
}

/** Runs a shell command in `cwd` as npm runs a script (our .bin on PATH), outside CI (where patch-package fails anyway). */
function runScript(command: string, cwd: string) {
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${join(root, "node_modules", ".bin")}:${process.env.PATH}` }
  delete env.CI
  return spawnSync("sh", ["-c", command], { cwd, env, encoding: "utf8" })
}

/** Starts a TypeScript entry point; settles when it prints its first line to stdout (then it is stopped) or exits. */
function start(file: string, args: string[], cwd: string, timeoutMs = 60_000) {
  return new Promise<{ started: boolean; code: number | null; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", file, ...args], {
      cwd,
      stdio: ["ignore", "pipe", "pipe"],
    })
    let stderr = ""
    let started = false
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()))
    createInterface({ input: child.stdout }).once("line", () => {
      started = true
      child.kill("SIGTERM")
    })
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`${file} neither started nor exited within ${timeoutMs} ms: ${stderr}`))
    }, timeoutMs)
    child.on("exit", (code) => {
      clearTimeout(timer)
      resolve({ started, code, stderr })
    })
  })
}

describe("ts-mls patch guard", () => {
  let dir = ""
  before(() => {
    dir = projectCopy()
    const reversed = runScript("patch-package --reverse", dir)
    assert.equal(reversed.status, 0, reversed.stdout + reversed.stderr)
  })
  after(() => rmSync(dir, { recursive: true, force: true }))

  const serverArgs = () => ["--port", "0", "--db", join(dir, "server.db")]

  it("refuses to start the server, in one line, when ts-mls decodes non-canonical encodings", async () => {
    const r = await start(join(dir, "server", "main.ts"), serverArgs(), dir)
    assert.equal(r.started, false, "the server started on an unpatched ts-mls")
    assert.equal(r.code, 1)
    assert.match(r.stderr, /^mls-server: ts-mls is not patched \(it decodes non-canonical encodings\)[^\n]*\n$/)
  })

  it("refuses to start the daemon, in one line, when ts-mls decodes non-canonical encodings", async () => {
    const args = ["--profile", "guard", "--data-dir", join(dir, "mlsd"), "--socket", join(dir, "mlsd.sock")]
    const r = await start(join(dir, "daemon", "main.ts"), args, dir)
    assert.equal(r.started, false, "the daemon started on an unpatched ts-mls")
    assert.equal(r.code, 1)
    assert.match(r.stderr, /^mlsd: ts-mls is not patched \(it decodes non-canonical encodings\)[^\n]*\n$/)
  })

  it("fails postinstall when a patch does not apply; on stock ts-mls it applies both and the server starts", async () => {
    const file = join(dir, "node_modules", "ts-mls", "dist", "src", "codec", "optional.js")
    const stock = readFileSync(file, "utf8")
    assert.ok(stock.includes("presenceOctet == 1"), "the line the fixes patch changes")
    writeFileSync(file, stock.replace("presenceOctet == 1", "presenceOctet == 0x01"))
    const failed = runScript(postinstall, dir)
    assert.notEqual(
      failed.status,
      0,
      `postinstall succeeded although a patch failed:\n${failed.stdout}${failed.stderr}`,
    )
    assert.match(failed.stdout + failed.stderr, /ts-mls\+1\.6\.4\+001\+fixes\.patch/)

    writeFileSync(file, stock)
    const applied = runScript(postinstall, dir)
    assert.equal(applied.status, 0, applied.stdout + applied.stderr)
    assert.match(applied.stdout, /\(1 fixes\) ✔[\s\S]*\(2 speed\) ✔/)
    const r = await start(join(dir, "server", "main.ts"), serverArgs(), dir)
    assert.equal(r.started, true, r.stderr)
  })
})
