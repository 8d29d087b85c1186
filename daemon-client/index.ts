/**
 * A typed client for mlsd's socket: newline-delimited JSON-RPC 2.0 over a Unix socket, typed by the registry of
 * rpc-schema/daemon. Used by the TUI, mlsctl and the tests. Depends only on node:net, json-rpc-2.0 and rpc-schema
 * (rpc-schema itself does no I/O, so the client lives here). With `{ validate: true }` it checks every result and
 * notification against its descriptor (the tests turn it on): a result that does not match rejects the call, a
 * notification that does not match (or is not in the registry) is still delivered and listed in `violations`.
 */
import { connect, type Socket } from "node:net"
import type { TSchema } from "@sinclair/typebox"
import { TypeCompiler, type TypeCheck } from "@sinclair/typebox/compiler"
import { JSONRPCClient, JSONRPCErrorException, type JSONRPCResponse } from "json-rpc-2.0"
import {
  methods,
  notifications,
  type MethodName,
  type MethodParams,
  type MethodResult,
  type NotificationName,
  type NotificationParams,
} from "../rpc-schema/daemon/index.js"

export interface DaemonClientOptions {
  /** Check results and notifications against their descriptors (for tests; costs a schema check per message). */
  validate?: boolean
}

const checks = new Map<TSchema, TypeCheck<TSchema>>()
/** Why `value` does not match `schema` ("" when it does); schemas compiled once. */
function mismatch(schema: TSchema, value: unknown): string {
  let c = checks.get(schema)
  if (!c) checks.set(schema, (c = TypeCompiler.Compile(schema)))
  if (c.Check(value)) return ""
  const e = c.Errors(value).First()
  return e ? `${e.path || "/"}: ${e.message}` : "does not match"
}

/** An error answer from the daemon: `code` is the JSON-RPC number, `appCode` the snake_case code when there is one. */
export class DaemonError extends Error {
  override readonly name = "DaemonError"
  constructor(
    readonly code: number,
    message: string,
    readonly data: unknown,
  ) {
    super(message)
  }
  get appCode(): string | undefined {
    const c = (this.data as { code?: unknown } | undefined)?.code
    return typeof c === "string" ? c : undefined
  }
}

type Listener<N extends NotificationName> = (params: NotificationParams<N>) => void
/** Any notification, by its name: for frontends that pass notifications on without knowing them (mlsctl watch). */
export type AnyListener = (method: string, params: unknown) => void

export class DaemonClient {
  private readonly rpc: JSONRPCClient
  private readonly listeners = new Map<string, Set<(params: never) => void>>()
  private readonly anyListeners = new Set<AnyListener>()
  private closedError: Error | undefined
  /** With `validate`: every notification that did not match its descriptor, as "name: path: message". */
  readonly violations: string[] = []
  /** Resolves with the reason once the connection is gone (closed by either side). */
  readonly closed: Promise<Error>

  private constructor(
    private readonly socket: Socket,
    private readonly opts: DaemonClientOptions = {},
  ) {
    let closed!: (reason: Error) => void
    this.closed = new Promise((resolve) => (closed = resolve))
    let nextId = 1
    this.rpc = new JSONRPCClient(
      (request) => {
        if (this.closedError) return Promise.reject(this.closedError)
        socket.write(JSON.stringify(request) + "\n")
        return Promise.resolve()
      },
      () => nextId++,
    )
    let rest = ""
    socket.setEncoding("utf8")
    socket.on("data", (chunk: string) => {
      const lines = (rest + chunk).split("\n")
      rest = lines.pop() ?? ""
      for (const line of lines) if (line.trim() !== "") this.onLine(line)
    })
    socket.on("close", () => {
      this.closedError ??= new Error("connection to the daemon closed")
      this.rpc.rejectAllPendingRequests(this.closedError.message)
      closed(this.closedError)
    })
    socket.on("error", (err) => (this.closedError = err))
  }

  /** Connects to the daemon's socket. */
  static connect(path: string, opts: DaemonClientOptions = {}): Promise<DaemonClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(path)
      socket.once("connect", () => {
        socket.off("error", reject)
        resolve(new DaemonClient(socket, opts))
      })
      socket.once("error", reject)
    })
  }

  private onLine(line: string): void {
    let msg: { method?: string; params?: unknown; id?: unknown }
    try {
      msg = JSON.parse(line) as typeof msg
    } catch {
      return
    }
    if (typeof msg.method === "string" && msg.id === undefined) {
      if (this.opts.validate) this.checkNotification(msg.method, msg.params)
      for (const l of this.listeners.get(msg.method) ?? []) (l as (p: unknown) => void)(msg.params)
      for (const l of this.anyListeners) l(msg.method, msg.params)
    } else this.rpc.receive(msg as JSONRPCResponse)
  }

  /** Calls a method; an error answer rejects with a DaemonError. */
  async call<M extends MethodName>(
    method: M,
    ...params: Record<never, never> extends MethodParams<M> ? [MethodParams<M>?] : [MethodParams<M>]
  ): Promise<MethodResult<M>> {
    const result = await this.request(method, params[0] ?? {})
    if (this.opts.validate) {
      const why = method in methods ? mismatch(methods[method].result, result) : "not in the registry"
      if (why) throw new Error(`the result of ${method} does not match its descriptor: ${why}`)
    }
    return result as MethodResult<M>
  }

  /**
   * Calls any method by name with unchecked params (`mlsctl call`: methods this build may not know yet); an error
   * answer rejects with a DaemonError.
   */
  async request(method: string, params: unknown): Promise<unknown> {
    try {
      return await this.rpc.request(method, params)
    } catch (err) {
      if (err instanceof JSONRPCErrorException) throw new DaemonError(err.code, err.message, err.data)
      throw err
    }
  }

  private checkNotification(name: string, params: unknown): void {
    const d = (notifications as Record<string, { params: TSchema } | undefined>)[name]
    const why = d ? mismatch(d.params, params) : "not in the registry"
    if (why) this.violations.push(`${name}: ${why}`)
  }

  /** Listens to a notification (after `events.subscribe`); returns the function that stops listening. */
  on<N extends NotificationName>(name: N, listener: Listener<N>): () => void {
    let set = this.listeners.get(name)
    if (!set) this.listeners.set(name, (set = new Set()))
    set.add(listener as (params: never) => void)
    return () => set.delete(listener as (params: never) => void)
  }

  /** Calls `listener` once when the connection ends (the daemon stopped, or `close()`), with the reason. */
  onClose(listener: (err: Error) => void): void {
    void this.closed.then(listener)
  }

  /** Listens to every notification (after `events.subscribe`); returns the function that stops listening. */
  onAny(listener: AnyListener): () => void {
    this.anyListeners.add(listener)
    return () => this.anyListeners.delete(listener)
  }

  /** Resolves with the first `name` notification that satisfies `predicate`, or rejects after `timeoutMs`. */
  next<N extends NotificationName>(
    name: N,
    predicate: (params: NotificationParams<N>) => boolean = () => true,
    timeoutMs = 10_000,
  ): Promise<NotificationParams<N>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off()
        reject(new Error(`no ${name} notification within ${timeoutMs} ms`))
      }, timeoutMs)
      const off = this.on(name, (p) => {
        if (!predicate(p)) return
        clearTimeout(timer)
        off()
        resolve(p)
      })
    })
  }

  close(): void {
    this.closedError ??= new Error("client closed")
    this.socket.destroy()
  }
}
