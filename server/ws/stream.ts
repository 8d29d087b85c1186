/**
 * The WebSocket endpoint (rpc-schema/server/ws.ts) on Fastify's own HTTP server: `upgrade`
 * requests for the stream path are checked against the per-address limit and authenticated with
 * the bearer token first, and only then handed to `ws`. A refusal is a plain HTTP answer with the
 * error body (404, 429 or 401); no WebSocket is opened.
 */
import { STATUS_CODES, type IncomingMessage } from "node:http"
import type { Duplex } from "node:stream"
import type { FastifyInstance } from "fastify"
import { WebSocketServer } from "ws"
import { AppError, errorTable } from "../../rpc-schema/errors.js"
import type { ErrorBody } from "../../rpc-schema/server/index.js"
import { closeCodes, closeReasons, streamPath } from "../../rpc-schema/server/ws.js"
import type { Clock } from "../clock.js"
import type { AuthService } from "../services/auth.js"
import type { DeliveryStore } from "../store/types.js"
import { StreamConnection, type StreamLimits } from "./connection.js"
import type { StreamHub } from "./hub.js"

/** Largest frame a client may send (a hello naming thousands of groups fits). */
const maxClientFrame = 1024 * 1024

function refuse(socket: Duplex, err: AppError): void {
  const body: ErrorBody = { error: { code: err.code, message: err.message } }
  if (err.details) body.error.details = err.details
  const text = JSON.stringify(body)
  const status = errorTable[err.code].http
  // Destroyed once the answer is written: nothing reads an upgrade socket, so it would never see the peer's end.
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
      `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
    () => socket.destroy(),
  )
}

export interface StreamSettings extends StreamLimits {
  /** Stream connections one remote address may hold at once, counting upgrades being authenticated. */
  maxConnectionsPerIp: number
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
  clock: Clock,
  settings: StreamSettings,
): Stream {
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: maxClientFrame })
  /** Sockets held per remote address: upgrades being authenticated and open streams. */
  const perAddress = new Map<string, number>()
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", () => socket.destroy())
    if (req.url?.split("?")[0] !== streamPath) return refuse(socket, new AppError("not_found", "no such stream"))
    // Counted from the upgrade request on, before authentication, so that a burst of upgrades
    // cannot pass the limit together; the slot is freed when the socket closes, however it ends.
    const address = req.socket.remoteAddress ?? ""
    const held = perAddress.get(address) ?? 0
    const max = settings.maxConnectionsPerIp
    if (held >= max) {
      return refuse(
        socket,
        new AppError("too_many_connections", `at most ${max} stream connections per address`, { maxConnections: max }),
      )
    }
    perAddress.set(address, held + 1)
    socket.once("close", () => {
      const left = (perAddress.get(address) ?? 1) - 1
      if (left > 0) perAddress.set(address, left)
      else perAddress.delete(address)
    })
    auth.authenticate(req.headers.authorization).then(
      (session) =>
        wss.handleUpgrade(req, socket, head, (ws) => {
          const conn = new StreamConnection(ws, socket, session, store, hub, clock, settings, app.log)
          hub.add(conn, ws)
          ws.on("close", () => hub.remove(conn))
          ws.on("error", (err) => app.log.debug({ err, device: session.device.deviceId }, "stream socket error"))
          // A logout between authentication and hub.add found no connection to end. Logout deletes the session
          // before telling the hub, so asking the store again now that the hub holds the connection leaves no gap.
          auth.revoked(session).then(
            (revoked) => {
              if (revoked) conn.revoked()
            },
            (err: unknown) => {
              app.log.error({ err, device: session.device.deviceId }, "stream session check failed")
              ws.close(1011, "internal error")
            },
          )
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
        ws.close(closeCodes.goingAway, closeReasons.goingAway)
        // A peer that does not answer the close handshake is cut.
        setTimeout(() => ws.terminate(), 1000).unref()
      }
      wss.close()
    },
  }
}
