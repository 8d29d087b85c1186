/**
 * Key directory routes: thin; ownership checks here, everything else in DirectoryService. The owner routes act on
 * the pool of the session's device; their `:username` must name the caller's own account (handle or user id).
 */
import type { FastifyInstance } from "fastify"
import { AppError } from "../../rpc-schema/errors.js"
import { keys as api } from "../../rpc-schema/server/index.js"
import type { AuthService } from "../services/auth.js"
import type { DirectoryService } from "../services/directory.js"
import type { DeviceRef } from "../store/types.js"
import { addRoute } from "./register.js"

function ownerOnly(device: DeviceRef, owner: string): void {
  if (owner !== device.handle && owner !== device.userId) {
    throw new AppError("forbidden", `${device.handle} cannot act on ${owner}'s KeyPackages`)
  }
}

export function keyRoutes(app: FastifyInstance, auth: AuthService, directory: DirectoryService): void {
  addRoute(app, auth, api.upload, async ({ device, params, body }) => {
    ownerOnly(device, params.username)
    return { results: await directory.upload(device, body.keyPackages) }
  })
  addRoute(app, auth, api.putLastResort, async ({ device, params, body }) => {
    ownerOnly(device, params.username)
    return directory.setLastResort(device, body.keyPackage)
  })
  addRoute(app, auth, api.withdraw, async ({ device, params }) => {
    ownerOnly(device, params.username)
    await directory.withdraw(device.deviceId, params.ref)
    return { ref: params.ref, withdrawn: true }
  })
  addRoute(app, auth, api.status, async ({ device, params }) => {
    ownerOnly(device, params.username)
    return directory.status(device.deviceId)
  })
  addRoute(app, auth, api.refs, async ({ device, params }) => {
    ownerOnly(device, params.username)
    return directory.refs(device.deviceId)
  })
  addRoute(app, auth, api.reserve, ({ device, body, ip }) =>
    directory.reserve(device, body.target, ip, body.cipherSuite),
  )
  addRoute(app, auth, api.spend, ({ device, body }) => directory.spend(device, body.ref, body.reservationId))
}
