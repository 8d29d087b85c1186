/** `rpc.*`: the interface describing itself. */
import { Type, type Static } from "@sinclair/typebox"
import { Strict } from "../common.js"
import { method } from "./method.js"

export const RpcDiscoverParams = Strict({})
export type RpcDiscoverParams = Static<typeof RpcDiscoverParams>

/** An OpenRPC 1.x document (https://spec.open-rpc.org); only its outline is checked here. */
export const OpenRpcDocument = Type.Object(
  {
    openrpc: Type.String({ pattern: "^1\\." }),
    info: Type.Object({ title: Type.String(), version: Type.String(), description: Type.Optional(Type.String()) }),
    methods: Type.Array(Type.Object({ name: Type.String() })),
    /** mlsd's extension: the notifications, described like methods without a result. */
    "x-notifications": Type.Optional(Type.Array(Type.Object({ name: Type.String() }))),
  },
  { additionalProperties: true },
)
export type OpenRpcDocument = Static<typeof OpenRpcDocument>

/** The OpenRPC document of this interface: every method served, with its params, result and error schemas. */
export const discover = method({
  name: "rpc.discover",
  summary: "the OpenRPC document of this interface",
  params: RpcDiscoverParams,
  result: OpenRpcDocument,
  errors: [],
})
