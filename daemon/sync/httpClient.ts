/**
 * The daemon's HTTP client for the server, typed by the route descriptors of rpc-schema/server: one undici Pool
 * (keep-alive connections) per server. Answers are validated before use; error bodies become AppErrors with the
 * server's code passed through unchanged; a failure to connect is `server_unreachable`. Answers are capped
 * (`maxAnswerBytes`): a server that sends more is cut off, not read into memory.
 */
import type { Static, TSchema } from "@sinclair/typebox"
import { TypeCompiler, type TypeCheck } from "@sinclair/typebox/compiler"
import { Pool } from "undici"
import { AppError, isErrorCode } from "../../rpc-schema/errors.js"
import { ErrorBody, type RouteDescriptor } from "../../rpc-schema/server/index.js"

type In<S> = S extends TSchema ? Static<S> : undefined
export type RouteInput<D extends RouteDescriptor> = (D["params"] extends TSchema
  ? { params: In<D["params"]> }
  : { params?: undefined }) &
  (D["body"] extends TSchema ? { body: In<D["body"]> } : { body?: undefined }) & {
    query?: Record<string, string | number>
  }

const checks = new WeakMap<TSchema, TypeCheck<TSchema>>()
function checker(schema: TSchema): TypeCheck<TSchema> {
  let c = checks.get(schema)
  if (!c) checks.set(schema, (c = TypeCompiler.Compile(schema)))
  return c
}
const errorBody = TypeCompiler.Compile(ErrorBody)

/** Fills `:name` segments from params, percent-encoded. */
export function pathOf(path: string, params: Record<string, unknown> | undefined): string {
  return path.replace(/:([A-Za-z]+)/g, (_, name: string) => encodeURIComponent(String(params?.[name] ?? "")))
}

function queryOf(query: Record<string, string | number> | undefined): string {
  if (!query) return ""
  const q = new URLSearchParams(Object.entries(query).map(([k, v]): [string, string] => [k, String(v)])).toString()
  return q ? `?${q}` : ""
}

/**
 * The largest answer read. The largest legitimate one is a log page: the daemon asks for `logPageSize` entries, each
 * at most the server's message limit (256 KiB by default, 342 KiB as base64), ≈ 22 MiB.
 */
export const maxAnswerBytes = 32 * 1024 * 1024
/** Entries per log page the daemon asks for, so that a page of the largest messages stays under `maxAnswerBytes`. */
export const logPageSize = 64

export class ServerClient {
  private readonly pool: Pool

  constructor(
    readonly baseUrl: string,
    opts: { connections?: number; timeoutMs?: number; maxAnswerBytes?: number } = {},
  ) {
    const timeout = opts.timeoutMs ?? 15_000
    this.pool = new Pool(new URL(baseUrl).origin, {
      connections: opts.connections ?? 8,
      connectTimeout: timeout,
      headersTimeout: timeout,
      bodyTimeout: timeout,
      maxResponseSize: opts.maxAnswerBytes ?? maxAnswerBytes,
    })
  }

  async call<D extends RouteDescriptor>(d: D, input: RouteInput<D>, token?: string): Promise<Static<D["response"]>> {
    const headers: Record<string, string> = {}
    if (token) headers.authorization = `Bearer ${token}`
    if (input.body !== undefined) headers["content-type"] = "application/json"
    let status: number
    let text: string
    try {
      const res = await this.pool.request({
        method: d.method,
        path: pathOf(d.path, input.params as Record<string, unknown> | undefined) + queryOf(input.query),
        headers,
        body: input.body === undefined ? undefined : JSON.stringify(input.body),
      })
      status = res.statusCode
      text = await res.body.text()
    } catch (err) {
      if ((err as { code?: string }).code === "UND_ERR_RES_EXCEEDED_MAX_SIZE") {
        throw new AppError("internal", `${this.baseUrl}: answer to ${d.method} ${d.path} over the size cap`)
      }
      throw new AppError("server_unreachable", `${this.baseUrl}: ${(err as Error).message}`)
    }
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch {
      throw new AppError(status >= 500 ? "server_unreachable" : "internal", `server answered ${status} without JSON`)
    }
    if (status === d.status) {
      if (!checker(d.response).Check(json)) throw new AppError("internal", `unexpected answer to ${d.method} ${d.path}`)
      return json as Static<D["response"]>
    }
    if (errorBody.Check(json) && isErrorCode(json.error.code)) {
      throw new AppError(json.error.code, json.error.message, { ...json.error.details, status })
    }
    throw new AppError(status >= 500 ? "server_unreachable" : "internal", `server answered ${status}`)
  }

  close(): Promise<void> {
    return this.pool.close()
  }
}
