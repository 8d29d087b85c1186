/**
 * Starts a real server in this process on 127.0.0.1:0 with a temp SQLite file and a ManualClock; with
 * MLS_TEST_STORE=postgres on a fresh database of the test PostgreSQL instead (helpers/postgres.ts), unless the test
 * names its own database.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { TestContext } from "node:test"
import { toBase64Url } from "../../rpc-schema/common.js"
import { sql } from "./db.js"
import { serverDb } from "./postgres.js"
import { buildApp, type ServerApp } from "../../server/app.js"
import { ManualClock } from "../../server/clock.js"
import { defaultConfig, type ServerConfig } from "../../server/config.js"

export interface TestServer {
  url: string
  app: ServerApp
  clock: ManualClock
  /** The SQLite file or the PostgreSQL URL. */
  dbPath: string
  /** Closes the server and opens a new one on the same database file and port-free address. */
  restart(): Promise<void>
  /** Closes the server (the URL stops answering) without removing its database. */
  stop(): Promise<void>
  /** Opens the server again on the same database file and the same port, so `url` is unchanged. */
  start(): Promise<void>
}

/**
 * The drain-resistance budgets, out of the way: the suite registers dozens of users and reserves from strangers on
 * 127.0.0.1 in most files. The tests of each limit (test/server/limits.test.ts) set theirs low explicitly.
 */
export const roomyLimits: Partial<ServerConfig> = {
  reserveTargetBurst: 1e6,
  reserveStrangerBurst: 1e6,
  reserveIpBurst: 1e6,
  registerIpBurst: 1e6,
  challengeIpBurst: 1e6,
  maxOutstandingChallenges: 1e6,
}

export async function startServer(t: TestContext, overrides: Partial<ServerConfig> = {}): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), "mls-server-"))
  const clock = new ManualClock()
  const config: ServerConfig = {
    ...defaultConfig,
    dbPath: overrides.dbPath ?? (await serverDb(dir)),
    logLevel: "silent",
    gcIntervalMs: 0,
    clock,
    ...roomyLimits,
    ...overrides,
  }
  const open = async (port = 0) => {
    const app = await buildApp(config)
    const url = await app.http.listen({ host: "127.0.0.1", port })
    return { app, url }
  }
  let stopped = false
  const server: TestServer = {
    ...(await open()),
    clock,
    dbPath: config.dbPath,
    async restart() {
      await server.app.close()
      Object.assign(server, await open())
    },
    async stop() {
      if (stopped) return
      stopped = true
      await server.app.close()
    },
    async start() {
      if (!stopped) return
      Object.assign(server, await open(Number(new URL(server.url).port)))
      stopped = false
    },
  }
  t.after(async () => {
    if (!stopped) await server.app.close()
    rmSync(dir, { recursive: true, force: true })
  })
  return server
}

/** Resolves once the server holds `n` stream connections; the hub raises no event, so this polls, with a bound. */
export async function untilStreamConnections(s: TestServer, n: number, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (s.app.hub.connectionCount !== n) {
    if (Date.now() > deadline) throw new Error(`the server still holds ${s.app.hub.connectionCount} streams, not ${n}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/**
 * Revokes every session of every device of account `username` (handle), each as `DELETE /v1/sessions` with its token
 * would (the server keeps only the tokens' hashes, which is all the revocation needs): the streams opened with them
 * close with 4001 "session revoked". Answers how many were revoked.
 */
export async function revokeSessions(s: TestServer, username: string): Promise<number> {
  const account = await s.app.store.account(username)
  let revoked = 0
  for (const d of account?.devices ?? []) {
    const rows = await sql<{ token_hash: Buffer; expires_at: number }>(
      s.app.store,
      "SELECT token_hash, expires_at FROM sessions WHERE device = ?",
      d.deviceId,
    )
    const device = { deviceId: d.deviceId, userId: d.userId, handle: d.handle, clientId: d.clientId }
    for (const r of rows) await s.app.auth.logout({ device, id: toBase64Url(r.token_hash), expiresAt: r.expires_at })
    revoked += rows.length
  }
  return revoked
}

/** The server's report of inbox items of `username`'s first device deleted by retention and not acknowledged past. */
export async function inboxExpiredReport(
  s: TestServer,
  username: string,
): Promise<{ count: number; through: number } | undefined> {
  const rows = await sql<{ count: number; through: number }>(
    s.app.store,
    `SELECT e.count, e.through FROM inbox_expired e JOIN devices d ON d.id = e.device
     JOIN accounts a ON a.user_id = d.user_id WHERE a.handle = ? ORDER BY d.n LIMIT 1`,
    username,
  )
  return rows[0]
}
