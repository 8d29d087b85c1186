/** Delivery routes: thin; everything in DeliveryService. */
import type { FastifyInstance } from "fastify"
import { groups as api, inbox } from "../../rpc-schema/server/index.js"
import type { AuthService } from "../services/auth.js"
import type { DeliveryService } from "../services/delivery.js"
import { addRoute } from "./register.js"

export function deliveryRoutes(app: FastifyInstance, auth: AuthService, delivery: DeliveryService): void {
  addRoute(app, auth, api.createGroup, ({ device, body }) => delivery.createGroup(device, body.groupId, body.groupInfo))
  addRoute(app, auth, api.listGroups, ({ device }) => delivery.listGroups(device))
  addRoute(app, auth, api.getGroup, ({ device, params }) => delivery.getGroup(device, params.groupId))
  addRoute(app, auth, api.joinableGroups, ({ device }) => delivery.joinableGroups(device))
  addRoute(app, auth, api.getGroupInfo, ({ device, params }) => delivery.getGroupInfo(device, params.groupId))
  addRoute(app, auth, api.externalCommit, ({ device, params, body }) =>
    delivery.externalCommit(device, params.groupId, body),
  )
  addRoute(app, auth, api.commit, ({ device, params, body }) => delivery.commit(device, params.groupId, body))
  addRoute(app, auth, api.postMessage, ({ device, params, body }) =>
    delivery.post(device, params.groupId, body.message, body.clientId),
  )
  addRoute(app, auth, api.postMessages, ({ device, params, body }) =>
    delivery.postBatch(device, params.groupId, body.messages),
  )
  addRoute(app, auth, api.readLog, ({ device, params, query }) => delivery.readLog(device, params.groupId, query))
  addRoute(app, auth, inbox.readInbox, ({ device, query }) => delivery.readInbox(device, query))
  addRoute(app, auth, inbox.ackInbox, async ({ device, body }) => ({ deleted: await delivery.ack(device, body.upTo) }))
}
