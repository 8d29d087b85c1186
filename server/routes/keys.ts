/** Key directory routes: thin; ownership checks here, everything else in DirectoryService. */
import type { FastifyInstance } from "fastify"
import { AppError } from "../../rpc-schema/errors.js"
import { keys as api } from "../../rpc-schema/server/index.js"
import type { AuthService } from "../services/auth.js"
import type { DirectoryService } from "../services/directory.js"
import { addRoute } from "./register.js"

function ownerOnly(user: string, owner: string): void {
  if (user !== owner) throw new AppError("forbidden", `${user} cannot act on ${owner}'s KeyPackages`)
}

export function keyRoutes(app: FastifyInstance, auth: AuthService, directory: DirectoryService): void {
  addRoute(app, auth, api.upload, async ({ user, params, body }) => {
    ownerOnly(user, params.username)
    return { results: await directory.upload(user, body.keyPackages) }
  })
  addRoute(app, auth, api.putLastResort, async ({ user, params, body }) => {
    ownerOnly(user, params.username)
    return directory.setLastResort(user, body.keyPackage)
  })
  addRoute(app, auth, api.withdraw, async ({ user, params }) => {
    ownerOnly(user, params.username)
    await directory.withdraw(user, params.ref)
    return { ref: params.ref, withdrawn: true }
  })
  addRoute(app, auth, api.status, async ({ user, params }) => {
    ownerOnly(user, params.username)
    return directory.status(user)
  })
  addRoute(app, auth, api.refs, async ({ user, params }) => {
    ownerOnly(user, params.username)
    return directory.refs(user)
  })
  addRoute(app, auth, api.reserve, ({ user, body, ip }) => directory.reserve(user, body.target, ip, body.cipherSuite))
  addRoute(app, auth, api.spend, ({ user, body }) => directory.spend(user, body.ref, body.reservationId))
}
