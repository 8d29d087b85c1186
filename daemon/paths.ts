/**
 * Where a profile lives (DESIGN §3): data in `$XDG_DATA_HOME/mls-chat/NAME/` (0700), the socket in
 * `$XDG_RUNTIME_DIR/mls-chat/NAME.sock`, or `$TMPDIR/mls-chat-UID/NAME.sock` when XDG_RUNTIME_DIR is unset. Flags win
 * over MLSD_* environment variables, which win over the XDG defaults.
 */
import { homedir, tmpdir, userInfo } from "node:os"
import { join, resolve } from "node:path"
import { normalizeName } from "../rpc-schema/common.js"

export interface ProfilePaths {
  profile: string
  dataDir: string
  dbPath: string
  /** The lock owner's pid, for the refusal message only. */
  pidPath: string
  socketPath: string
}

/** The OS user name made into a valid profile name. */
export function defaultProfile(): string {
  const name = userInfo()
    .username.replace(/[^A-Za-z0-9._-]/g, "_")
    .replace(/^[._-]+/, "")
    .slice(0, 32)
  return normalizeName(name) ?? "default"
}

export function profilePaths(
  flags: { profile?: string; dataDir?: string; socket?: string },
  env: NodeJS.ProcessEnv,
): ProfilePaths {
  // Profile names follow the user-name rule (rpc-schema/common.ts): "Alice" is the profile "alice".
  const given = flags.profile ?? env.MLSD_PROFILE
  const profile = given === undefined ? defaultProfile() : normalizeName(given)
  if (profile === undefined) {
    throw new Error(`invalid profile name "${given}": use [A-Za-z0-9._-], 1..32, starting with a letter or digit`)
  }
  const dataHome = env.XDG_DATA_HOME || join(homedir(), ".local", "share")
  const dataDir = resolve(flags.dataDir ?? env.MLSD_DATA_DIR ?? join(dataHome, "mls-chat", profile))
  const runtime = env.XDG_RUNTIME_DIR
    ? join(env.XDG_RUNTIME_DIR, "mls-chat")
    : join(tmpdir(), `mls-chat-${process.getuid?.() ?? userInfo().username}`)
  const socketPath = resolve(flags.socket ?? env.MLSD_SOCKET ?? join(runtime, `${profile}.sock`))
  return { profile, dataDir, dbPath: join(dataDir, "mlsd.db"), pidPath: join(dataDir, "mlsd.pid"), socketPath }
}
