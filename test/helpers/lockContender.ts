/**
 * A child process of test/daemon/lock.test.ts: tries to take a profile lock at an instant the test gives it, so that
 * two contenders try at once (within microseconds, one per core) rather than a process start-up apart. Prints
 * "ready", reads the instant (ms since the epoch) from stdin, spins until then, tries, prints "got" or "refused …",
 * and holds what it got until it is killed.
 */
import { join } from "node:path"
import { createInterface } from "node:readline"
import { acquireLock } from "../../daemon/lock.js"

const dataDir = process.argv[2]!
const lines = createInterface({ input: process.stdin })
process.stdout.write("ready\n")
for await (const line of lines) {
  const at = Number(line)
  while (Date.now() < at) {
    // spin: a timer would wake each contender at a different moment
  }
  try {
    await acquireLock(dataDir, join(dataDir, "mlsd.pid"))
    process.stdout.write("got\n")
  } catch (err) {
    process.stdout.write(`refused ${(err as Error).message}\n`)
  }
}
