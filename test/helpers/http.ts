/** A raw HTTP client for tests: sends exactly what it is given, returns status and parsed body. */
import { request } from "undici"

export interface HttpResult<T = any> {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: T
}

export interface HttpOptions {
  token?: string
  /** JSON body (serialised here). */
  json?: unknown
  /** Raw body sent as is, with content-type application/json unless `contentType` says otherwise. */
  raw?: string | Buffer
  contentType?: string
  headers?: Record<string, string>
}

export async function http<T = any>(
  base: string,
  method: "GET" | "POST" | "PUT" | "DELETE",
  path: string,
  opts: HttpOptions = {},
): Promise<HttpResult<T>> {
  const headers: Record<string, string> = { ...opts.headers }
  if (opts.token) headers.authorization = `Bearer ${opts.token}`
  let body: string | Buffer | undefined
  if (opts.json !== undefined) body = JSON.stringify(opts.json)
  if (opts.raw !== undefined) body = opts.raw
  if (body !== undefined) headers["content-type"] = opts.contentType ?? "application/json"
  const res = await request(base + path, { method, headers, body })
  const text = await res.body.text()
  let parsed: unknown = text
  try {
    parsed = JSON.parse(text)
  } catch {
    // not JSON: the caller sees the text
  }
  return { status: res.statusCode, headers: res.headers, body: parsed as T }
}
