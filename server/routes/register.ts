/** Registers a route from its rpc-schema descriptor: schemas, authentication, typed handler. */
import type { Static, TSchema } from "@sinclair/typebox"
import type { FastifyInstance } from "fastify"
import type { RouteDescriptor } from "../../rpc-schema/server/index.js"
import type { AuthService, Session } from "../services/auth.js"
import type { DeviceRef } from "../store/types.js"

type In<S> = S extends TSchema ? Static<S> : undefined

export interface RouteInput<D extends RouteDescriptor> {
  params: In<D["params"]>
  query: In<NonNullable<D["query"]>>
  body: In<D["body"]>
  /** The authenticated device (the session's); undefined on routes without authentication. */
  device: DeviceRef
  /** The session of the request's bearer token; undefined on routes without authentication. */
  session: Session | undefined
  /** The TCP peer's address (forwarded headers are not trusted): the key of the per-address limits. */
  ip: string
}

export function addRoute<D extends RouteDescriptor>(
  app: FastifyInstance,
  auth: AuthService,
  d: D,
  handler: (input: RouteInput<D>) => Promise<Static<D["response"]>>,
): void {
  app.route({
    method: d.method,
    url: d.path,
    schema: {
      ...(d.params && { params: d.params }),
      ...(d.query && { querystring: d.query }),
      ...(d.body && { body: d.body }),
      response: { [d.status]: d.response },
    },
    // Authentication comes first, so an unauthenticated caller learns nothing from validation.
    onRequest: d.auth
      ? async (request) => {
          request.session = await auth.authenticate(request.headers.authorization)
        }
      : undefined,
    handler: async (request, reply) => {
      const result = await handler({
        params: request.params as In<D["params"]>,
        query: request.query as In<NonNullable<D["query"]>>,
        body: request.body as In<D["body"]>,
        // Read only by routes with authentication, where onRequest has set the session.
        device: request.session?.device as DeviceRef,
        session: request.session,
        ip: request.ip,
      })
      return reply.status(d.status).send(result)
    },
  })
}

declare module "fastify" {
  interface FastifyRequest {
    session: Session | undefined
  }
}
