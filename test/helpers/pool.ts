/** Pool assertions for daemon tests: the server's view of a user's keys, fetched over real HTTP. */
import Database from "better-sqlite3"
import { readFileSync, existsSync } from "node:fs"
import { http } from "./http.js"
import { login, type TestUser } from "./users.js"

/** The server's status and refs for `name`, logged in as `name` with the key the daemon registered. */
export async function serverPool(base: string, user: { name: string; token: string }) {
  const st = await http(base, "GET", `/v1/users/${user.name}/keypackages/status`, { token: user.token })
  const refs = await http(base, "GET", `/v1/users/${user.name}/keypackages/refs`, { token: user.token })
  if (st.status !== 200 || refs.status !== 200) throw new Error(`server pool: ${st.status} ${refs.status}`)
  return { status: st.body, refs: refs.body as { available: string[]; reserved: string[] } }
}

/**
 * A session for the daemon's device, using the login key from the daemon's own database (read-only, closed at once).
 * The login key is not the MLS key: the server binds the MLS key to the device separately.
 */
export async function daemonUserSession(base: string, dbPath: string): Promise<TestUser> {
  const db = new Database(dbPath, { readonly: true })
  try {
    const row = db.prepare("SELECT username, device_id, login_public, login_private FROM identity").get() as any
    const id = { seed: new Uint8Array(row.login_private), publicKey: new Uint8Array(row.login_public) }
    return { name: row.username, ...id, token: await login(base, row.username, id, row.device_id) }
  } finally {
    db.close()
  }
}

/** The private init keys of the given refs, read from the daemon's database (read-only, closed at once). */
export function privateInitKeys(dbPath: string, refs: readonly string[]): Map<string, Buffer> {
  const db = new Database(dbPath, { readonly: true })
  try {
    const get = db.prepare("SELECT init_private FROM keypackage_secrets WHERE ref = ?")
    const out = new Map<string, Buffer>()
    for (const ref of refs) {
      const row = get.get(ref) as { init_private: Buffer } | undefined
      if (row) out.set(ref, row.init_private)
    }
    return out
  } finally {
    db.close()
  }
}

/** How many of `secrets` occur anywhere in the raw bytes of the database file and its WAL. */
export function secretsInFile(dbPath: string, secrets: Iterable<Buffer>): number {
  const files = [dbPath, `${dbPath}-wal`].filter(existsSync).map((f) => readFileSync(f))
  let found = 0
  for (const s of secrets) if (files.some((f) => f.indexOf(s) !== -1)) found++
  return found
}
