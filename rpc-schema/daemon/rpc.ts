/** `rpc.*`: the interface describing itself. */
import { Type, type Static } from "@sinclair/typebox"
import { described, Strict } from "../common.js"
import { method } from "./method.js"

export const RpcDiscoverParams = Strict({})
export type RpcDiscoverParams = Static<typeof RpcDiscoverParams>

/** An OpenRPC 1.x document (https://spec.open-rpc.org); only its outline is checked here. */
export const OpenRpcDocument = Type.Object(
  {
    openrpc: described(Type.String({ pattern: "^1\\." }), "the OpenRPC version of the document"),
    info: described(
      Type.Object({
        title: described(Type.String(), "the service: mlsd"),
        version: described(Type.String(), "the daemon's version"),
        description: described(Type.Optional(Type.String()), "what the service is, in one line"),
      }),
      "title, version and description of the service",
    ),
    methods: described(
      Type.Array(Type.Object({ name: described(Type.String(), "the method name") })),
      "the methods this daemon serves, each with summary, description, params, result and errors",
    ),
    "x-notifications": described(
      Type.Optional(Type.Array(Type.Object({ name: described(Type.String(), "the notification name") }))),
      "mlsd's extension: the notifications, described like methods without a result.",
    ),
  },
  { additionalProperties: true },
)
export type OpenRpcDocument = Static<typeof OpenRpcDocument>

export const discover = method({
  name: "rpc.discover",
  summary: "the OpenRPC document of this interface",
  description:
    "The OpenRPC document of this interface: every method served, with its params, result and error schemas.",
  params: RpcDiscoverParams,
  result: OpenRpcDocument,
  errors: [],
})
