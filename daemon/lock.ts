/**
 * One daemon per profile: a lock file holding the owner's pid, created exclusively. A lock whose pid is no longer
 * running was left by a killed daemon and is taken over. Then the socket: if something answers on it another
 * daemon serves it (refuse); otherwise a leftover socket file is stale and removed.
 */
import { closeSync, existsSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs"
import { connect } from "node:net"

export class ProfileLocked extends Error {}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === "EPERM"
  }
}

export function acquireLock(path: string): () => void {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, "wx", 0o600)
      writeSync(fd, `${process.pid}\n`)
      closeSync(fd)
      return () => {
        try {
          if (readFileSync(path, "utf8").trim() === String(process.pid)) unlinkSync(path)
        } catch {
          // gone already
        }
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err
    }
    let pid = NaN
    try {
      pid = Number.parseInt(readFileSync(path, "utf8"), 10)
    } catch {
      continue // removed meanwhile: try again
    }
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
      throw new ProfileLocked(`another daemon (pid ${pid}) serves this profile`)
    }
    try {
      unlinkSync(path)
    } catch {
      // another starter removed it first
    }
  }
  throw new ProfileLocked(`could not take the lock ${path}`)
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
