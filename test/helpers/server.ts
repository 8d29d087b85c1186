/** Starts a real server in this process on 127.0.0.1:0 with a temp SQLite file and a ManualClock. */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { TestContext } from "node:test"
import { buildApp, type ServerApp } from "../../server/app.js"
import { ManualClock } from "../../server/clock.js"
import { defaultConfig, type ServerConfig } from "../../server/config.js"

export interface TestServer {
  url: string
  app: ServerApp
  clock: ManualClock
  dbPath: string
  /** Closes the server and opens a new one on the same database file and port-free address. */
  restart(): Promise<void>
}

export async function startServer(t: TestContext, overrides: Partial<ServerConfig> = {}): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), "mls-server-"))
  const clock = new ManualClock()
  const config: ServerConfig = {
    ...defaultConfig,
    dbPath: join(dir, "server.db"),
    logLevel: "silent",
    gcIntervalMs: 0,
    clock,
    ...overrides,
  }
  const open = async () => {
    const app = await buildApp(config)
    const url = await app.http.listen({ host: "127.0.0.1", port: 0 })
    return { app, url }
  }
  const server: TestServer = {
    ...(await open()),
    clock,
    dbPath: config.dbPath,
    async restart() {
      await server.app.close()
      Object.assign(server, await open())
    },
  }
  t.after(async () => {
    await server.app.close()
    rmSync(dir, { recursive: true, force: true })
  })
  return server
}
