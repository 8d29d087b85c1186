/** Registration, login challenge, sessions (login, logout), directory lookup, devices, health. */
import type { FastifyInstance } from "fastify"
import { auth as api, devices } from "../../rpc-schema/server/index.js"
import type { AuthService } from "../services/auth.js"
import type { DeviceService } from "../services/devices.js"
import { addRoute } from "./register.js"

export const version = "0.1.0"

export function authRoutes(app: FastifyInstance, auth: AuthService, deviceService: DeviceService): void {
  addRoute(app, auth, api.health, async () => ({ status: "ok" as const, version }))
  addRoute(app, auth, api.register, ({ body, ip }) => auth.register(body, ip))
  addRoute(app, auth, api.challenge, ({ body, ip }) => auth.challenge(body, ip))
  addRoute(app, auth, api.login, ({ body }) => auth.login(body))
  addRoute(app, auth, api.logout, async ({ session }) => {
    await auth.logout(session!)
    return {}
  })
  addRoute(app, auth, api.getUser, ({ params }) => auth.lookup(params.username))
  addRoute(app, auth, devices.createLinkCode, ({ device }) => deviceService.createLinkCode(device))
  addRoute(app, auth, devices.linkDevice, ({ body, ip }) => deviceService.link(body, ip))
  addRoute(app, auth, devices.addDevice, ({ device, body }) => deviceService.add(device, body))
  addRoute(app, auth, devices.removeDevice, ({ device, params }) => deviceService.remove(device, params.deviceId))
}
