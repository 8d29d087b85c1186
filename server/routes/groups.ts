/** Delivery routes: thin; everything in DeliveryService. */
import type { FastifyInstance } from "fastify"
import { groups as api, inbox } from "../../rpc-schema/server/index.js"
import type { AuthService } from "../services/auth.js"
import type { DeliveryService } from "../services/delivery.js"
import { addRoute } from "./register.js"

export function deliveryRoutes(app: FastifyInstance, auth: AuthService, delivery: DeliveryService): void {
  addRoute(app, auth, api.createGroup, ({ user, body }) => delivery.createGroup(user, body.groupId))
  addRoute(app, auth, api.listGroups, ({ user }) => delivery.listGroups(user))
  addRoute(app, auth, api.getGroup, ({ user, params }) => delivery.getGroup(user, params.groupId))
  addRoute(app, auth, api.commit, ({ user, params, body }) => delivery.commit(user, params.groupId, body))
  addRoute(app, auth, api.postMessage, ({ user, params, body }) =>
    delivery.post(user, params.groupId, body.message, body.clientId),
  )
  addRoute(app, auth, api.postMessages, ({ user, params, body }) =>
    delivery.postBatch(user, params.groupId, body.messages),
  )
  addRoute(app, auth, api.readLog, ({ user, params, query }) => delivery.readLog(user, params.groupId, query))
  addRoute(app, auth, inbox.readInbox, ({ user, query }) => delivery.readInbox(user, query))
  addRoute(app, auth, inbox.ackInbox, async ({ user, body }) => ({ deleted: await delivery.ack(user, body.upTo) }))
}
