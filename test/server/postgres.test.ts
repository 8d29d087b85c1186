/**
 * The server suite again, on PostgreSQL: every file of test/server that runs a server runs once more with
 * MLS_TEST_STORE=postgres, so each test gets a fresh database of one embedded PostgreSQL cluster started here
 * (helpers/postgres.ts) instead of a SQLite file. One suite, two backends. Not rerun: migration.test.ts (SQLite's
 * schema history), startup.test.ts and logging.test.ts (the command line with file paths), and
 * keyPackageValidation.test.ts (no store).
 */
import assert from "node:assert/strict"
import { spawn } from "node:child_process"
import { join } from "node:path"
import { describe, it } from "node:test"
import { testCluster } from "../helpers/postgres.js"

const files = [
  "auth",
  "badInput",
  "delivery",
  "devices",
  "externalJoin",
  "keyDirectory",
  "limits",
  "retention",
  "stream",
  "streamLimits",
  "streamRestart",
  "tls",
]

/** Runs one test file in a child node:test process on PostgreSQL; answers its exit code and output. */
async function runOnPostgres(file: string): Promise<{ code: number | null; output: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, MLS_TEST_STORE: "postgres", MLS_TEST_PG_URL: await testCluster() }
  // Set by the runner that runs this file: the child would report to it in its protocol instead of running its tests.
  delete env.NODE_TEST_CONTEXT
  const path = join(import.meta.dirname, `${file}.test.ts`)
  const child = spawn(process.execPath, ["--import", "tsx", "--test", "--test-reporter=spec", path], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  })
  let output = ""
  child.stdout.on("data", (d: Buffer) => (output += d.toString()))
  child.stderr.on("data", (d: Buffer) => (output += d.toString()))
  const code = await new Promise<number | null>((resolve) => child.once("close", resolve))
  return { code, output }
}

describe("the server suite on PostgreSQL", { concurrency: 2 }, () => {
  for (const file of files) {
    it(`${file}.test.ts passes`, async () => {
      const { code, output } = await runOnPostgres(file)
      assert.equal(code, 0, `${file}.test.ts failed on PostgreSQL:\n${output}`)
      // The file ran tests, and none failed (a child that ran nothing would pass too).
      assert.match(output, /^ℹ pass [1-9]/m, output)
      assert.match(output, /^ℹ fail 0$/m, output)
    })
  }
})
