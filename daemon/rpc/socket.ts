/**
 * The Unix socket: newline-delimited JSON-RPC 2.0. Requests on one connection are handled concurrently (answers
 * carry their ids). A line longer than 1 MiB gets an invalid-request error and the connection is closed; other
 * connections are not affected. The socket file is created 0600 in a 0700 directory.
 */
import { chmodSync, mkdirSync } from "node:fs"
import { createServer, type Server, type Socket } from "node:net"
import { dirname } from "node:path"
import type { Logger } from "pino"
import { Connection } from "./connection.js"

export const maxLineBytes = 1024 * 1024

/** Handles one line; the answer to write, or null (a notification). */
export type LineHandler = (line: string, conn: Connection) => Promise<unknown>

export class RpcSocketServer {
  private readonly server: Server
  private readonly connections = new Set<Connection>()
  private nextId = 1

  constructor(
    private readonly handle: LineHandler,
    private readonly log: Logger,
  ) {
    this.server = createServer((socket) => this.accept(socket))
  }

  get clients(): ReadonlySet<Connection> {
    return this.connections
  }

  async listen(path: string): Promise<void> {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
    // The umask makes the socket 0600 from the start; chmod in case the platform ignores it for sockets.
    const umask = process.umask(0o177)
    try {
      await new Promise<void>((resolve, reject) => {
        this.server.once("error", reject)
        this.server.listen(path, () => {
          this.server.off("error", reject)
          resolve()
        })
      })
    } finally {
      process.umask(umask)
    }
    chmodSync(path, 0o600)
  }

  private accept(socket: Socket): void {
    const conn = new Connection(this.nextId++, socket)
    this.connections.add(conn)
    let buffered: Buffer[] = []
    let size = 0
    socket.on("data", (chunk: Buffer) => {
      if (socket.isPaused()) return
      let start = 0
      for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, start)) {
        const part = chunk.subarray(start, nl)
        start = nl + 1
        if (size + part.length > maxLineBytes) return this.tooLong(conn)
        const line = Buffer.concat([...buffered, part]).toString("utf8")
        buffered = []
        size = 0
        if (line.trim() !== "") void this.dispatch(line, conn)
      }
      const rest = chunk.subarray(start)
      if (rest.length > 0) {
        size += rest.length
        if (size > maxLineBytes) return this.tooLong(conn)
        buffered.push(rest)
      }
    })
    socket.on("error", (err) => this.log.debug({ err, conn: conn.id }, "client socket error"))
    socket.on("close", () => this.connections.delete(conn))
  }

  private tooLong(conn: Connection): void {
    conn.write({
      jsonrpc: "2.0",
      id: null,
      error: { code: -32600, message: `request line longer than ${maxLineBytes} bytes; closing the connection` },
    })
    this.log.warn({ conn: conn.id }, "closed a connection that sent an oversized line")
    conn.end()
  }

  private async dispatch(line: string, conn: Connection): Promise<void> {
    try {
      const answer = await this.handle(line, conn)
      if (answer !== null && answer !== undefined) conn.write(answer)
      conn.flush()
    } catch (err) {
      this.log.error({ err }, "request handling failed")
    }
  }

  async close(): Promise<void> {
    for (const c of this.connections) c.close()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}
