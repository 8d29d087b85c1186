/**
 * The WebSocket endpoint (rpc-schema/server/ws.ts) on Fastify's own HTTP server: `upgrade`
 * requests for the stream path are authenticated with the bearer token first, and only then
 * handed to `ws`. A bad token gets a plain 401 with the error body; no WebSocket is opened.
 */
import type { IncomingMessage } from "node:http"
import type { Duplex } from "node:stream"
import type { FastifyInstance } from "fastify"
import { WebSocketServer } from "ws"
import { AppError, errorTable } from "../../rpc-schema/errors.js"
import { closeCodes, streamPath } from "../../rpc-schema/server/ws.js"
import type { AuthService } from "../services/auth.js"
import type { DeliveryStore } from "../store/types.js"
import { StreamConnection, type StreamLimits } from "./connection.js"
import type { StreamHub } from "./hub.js"

/** Largest frame a client may send (a hello naming thousands of groups fits). */
const maxClientFrame = 1024 * 1024

function refuse(socket: Duplex, err: AppError): void {
  const body = JSON.stringify({ error: { code: err.code, message: err.message } })
  const status = errorTable[err.code].http
  socket.end(
    `HTTP/1.1 ${status} ${status === 401 ? "Unauthorized" : "Not Found"}\r\n` +
      `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  )
}

export interface Stream {
  /** Closes every stream connection (1001, going away). */
  close(): void
}

export function attachStream(
  app: FastifyInstance,
  auth: AuthService,
  store: DeliveryStore,
  hub: StreamHub,
  limits: StreamLimits,
): Stream {
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: maxClientFrame })
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", () => socket.destroy())
    if (req.url?.split("?")[0] !== streamPath) return refuse(socket, new AppError("not_found", "no such stream"))
    auth.authenticate(req.headers.authorization).then(
      (user) =>
        wss.handleUpgrade(req, socket, head, (ws) => {
          const conn = new StreamConnection(ws, user, store, hub, limits, app.log)
          hub.add(conn, ws)
          ws.on("close", () => hub.remove(conn))
          ws.on("error", (err) => app.log.debug({ err, user }, "stream socket error"))
        }),
      (err: unknown) => {
        if (err instanceof AppError) return refuse(socket, err)
        app.log.error({ err }, "stream authentication failed")
        socket.destroy()
      },
    )
  }
  app.server.on("upgrade", onUpgrade)
  return {
    close() {
      app.server.off("upgrade", onUpgrade)
      hub.close()
      for (const ws of wss.clients) {
        ws.close(closeCodes.goingAway, "server shutting down")
        // A peer that does not answer the close handshake is cut.
        setTimeout(() => ws.terminate(), 1000).unref()
      }
      wss.close()
    },
  }
}
