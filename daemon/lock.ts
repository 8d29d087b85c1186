/**
 * One daemon per profile. The lock is a listening Linux abstract Unix socket named after the data dir's real path:
 * binding it is atomic, a second bind fails with EADDRINUSE, and the kernel frees the name the moment its owner
 * dies, so there is never a stale lock to take over. (A pid file taken over by unlink-and-create had that step: two
 * starters read the same dead pid, A replaced the file, B then replaced A's, and both ran. SQLite's exclusive
 * locking mode was tried too and let two starters in under a tight race.) The owner's pid goes into `mlsd.pid`, for
 * the refusal message only. Then the socket: if something answers on it another daemon serves it (refuse);
 * otherwise a leftover socket file is stale and removed (only the lock's owner gets this far).
 */
import { createHash } from "node:crypto"
import { existsSync, readFileSync, realpathSync, unlinkSync, writeFileSync } from "node:fs"
import { connect, createServer } from "node:net"

export class ProfileLocked extends Error {}

/** " (pid N)" when the pid file names a live process (before the new owner writes it, it names the dead one). */
function holderPid(pidPath: string): string {
  let pid = NaN
  try {
    pid = Number.parseInt(readFileSync(pidPath, "utf8"), 10)
    process.kill(pid, 0)
  } catch (err) {
    // EPERM: alive, but someone else's.
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return ""
  }
  return ` (pid ${pid})`
}

/** Takes the lock of the profile whose data dir is `dataDir`, or throws ProfileLocked; resolves with its release. */
export async function acquireLock(dataDir: string, pidPath: string): Promise<() => void> {
  // A hash keeps the name within the 107 bytes of sun_path whatever the path's length.
  const name = `\0mls-chat/mlsd/${createHash("sha256").update(realpathSync(dataDir)).digest("hex")}`
  const server = createServer((c) => c.destroy())
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) =>
      reject(
        err.code === "EADDRINUSE" ? new ProfileLocked(`another daemon${holderPid(pidPath)} serves this profile`) : err,
      ),
    )
    server.listen(name, () => resolve())
  })
  server.unref()
  writeFileSync(pidPath, `${process.pid}\n`, { mode: 0o600 })
  return () => {
    try {
      unlinkSync(pidPath)
    } catch {
      // gone already
    }
    server.close()
  }
}

/** Whether a server answers on the Unix socket at `path`. */
function answering(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path)
    s.once("connect", () => {
      s.destroy()
      resolve(true)
    })
    s.once("error", () => resolve(false))
  })
}

/** Removes a stale socket file; refuses when a live server answers on it. */
export async function clearStaleSocket(path: string): Promise<boolean> {
  if (!existsSync(path)) return false
  if (await answering(path)) throw new ProfileLocked(`something answers on ${path} already`)
  unlinkSync(path)
  return true
}
