/**
 * Validate-then-dispatch: one JSONRPCServer whose methods are the registry's descriptors. Params are checked with
 * the descriptor's compiled TypeBox validator before the handler runs (-32602 with `data.issues`); application
 * errors become `{code: table[c].rpc, message, data: {code}}`; anything unexpected is logged and answered as
 * `internal`. Parse errors (-32700), invalid requests (-32600) and unknown methods (-32601) are the library's.
 */
import { TypeCompiler } from "@sinclair/typebox/compiler"
import { createJSONRPCErrorResponse, JSONRPCErrorException, JSONRPCServer, type JSONRPCID } from "json-rpc-2.0"
import type { Logger } from "pino"
import type { MethodDescriptor, MethodName, MethodParams, MethodResult } from "../../rpc-schema/daemon/index.js"
import { AppError, errorTable } from "../../rpc-schema/errors.js"
import type { Connection } from "./connection.js"

export type Handlers = {
  [M in MethodName]: (params: MethodParams<M>, conn: Connection) => MethodResult<M> | Promise<MethodResult<M>>
}

export const invalidParams = -32602

/**
 * One line naming the first bad param, what it is (its description) and why it failed, e.g. `invalid params for
 * message.list: before (only messages with a seq below this one): Expected integer`; every issue is in `data.issues`.
 */
export function invalidParamsMessage(m: MethodDescriptor, issues: { path: string; message: string }[]): string {
  const first = issues[0]
  if (!first) return `invalid params for ${m.name}`
  const name = first.path.split("/")[1]
  const described = name !== undefined ? m.params.properties[name]?.description : undefined
  const what = name === undefined || name === "" ? "params" : `${name}${described ? ` (${described})` : ""}`
  const more = issues.length > 1 ? ` (${issues.length - 1} more in data.issues)` : ""
  return `invalid params for ${m.name}: ${what}: ${first.message}${more}`.replace(/\s*\n\s*/g, " ")
}

export function buildRpcServer(
  served: readonly MethodDescriptor[],
  handlers: Partial<Handlers>,
  log: Logger,
): JSONRPCServer<Connection> {
  // Failures are logged below (unexpected ones only), not by the library.
  const server = new JSONRPCServer<Connection>({ errorListener: () => undefined })
  server.mapErrorToJSONRPCErrorResponse = (id: JSONRPCID, err: unknown) => {
    if (err instanceof JSONRPCErrorException) return createJSONRPCErrorResponse(id, err.code, err.message, err.data)
    const app = err instanceof AppError ? err : new AppError("internal", "internal error")
    if (!(err instanceof AppError)) log.error({ err }, "RPC handler failed")
    const data = { code: app.code, ...(app.details && { details: app.details }) }
    return createJSONRPCErrorResponse(id, errorTable[app.code].rpc, app.message, data)
  }
  for (const m of served) {
    const handler = handlers[m.name as MethodName] as
      ((params: unknown, conn: Connection) => unknown | Promise<unknown>) | undefined
    if (!handler) throw new Error(`no handler for ${m.name}`)
    const check = TypeCompiler.Compile(m.params)
    server.addMethod(m.name, (params, conn) => {
      // Params are by name; an omitted params member is the empty object.
      const p = params ?? {}
      if (!check.Check(p)) {
        const issues = [...check.Errors(p)].map((e) => ({ path: e.path || "/", message: e.message }))
        throw new JSONRPCErrorException(invalidParamsMessage(m, issues), invalidParams, { issues })
      }
      return handler(p, conn)
    })
  }
  return server
}
