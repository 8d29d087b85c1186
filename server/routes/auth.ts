/** Registration, login challenge, sessions (login, logout), directory lookup, health. */
import type { FastifyInstance } from "fastify"
import { auth as api } from "../../rpc-schema/server/index.js"
import type { AuthService } from "../services/auth.js"
import { addRoute } from "./register.js"

export const version = "0.1.0"

export function authRoutes(app: FastifyInstance, auth: AuthService): void {
  addRoute(app, auth, api.health, async () => ({ status: "ok" as const, version }))
  addRoute(app, auth, api.register, ({ body, ip }) => auth.register(body, ip))
  addRoute(app, auth, api.challenge, ({ body, ip }) => auth.challenge(body.username, ip))
  addRoute(app, auth, api.login, ({ body }) => auth.login(body))
  addRoute(app, auth, api.logout, async ({ session }) => {
    await auth.logout(session!)
    return {}
  })
  addRoute(app, auth, api.getUser, ({ params }) => auth.signatureKey(params.username))
}
