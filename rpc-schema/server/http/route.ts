/** The shape of an HTTP route descriptor: declared once, registered by the server, called by the daemon. */
import type { TSchema } from "@sinclair/typebox"
import type { ErrorCode } from "../../errors.js"

export interface RouteDescriptor<
  Params extends TSchema | undefined = TSchema | undefined,
  Body extends TSchema | undefined = TSchema | undefined,
  Response extends TSchema = TSchema,
  Query extends TSchema | undefined = TSchema | undefined,
> {
  method: "GET" | "POST" | "PUT" | "DELETE"
  /** Fastify-style path with `:name` parameters, under /v1. */
  path: string
  /** Whether a bearer token is required. */
  auth: boolean
  params: Params
  /** Query-string parameters, if any. Always strings on the wire: integers are declared as digit patterns. */
  query?: Query
  body: Body
  /** Success status and its body. */
  status: 200 | 201
  response: Response
  /** The error codes this route can answer with (besides invalid_request, unauthenticated, internal). */
  errors: readonly ErrorCode[]
}

export const route = <
  P extends TSchema | undefined,
  B extends TSchema | undefined,
  R extends TSchema,
  Q extends TSchema | undefined = undefined,
>(
  d: RouteDescriptor<P, B, R, Q>,
): RouteDescriptor<P, B, R, Q> => d
