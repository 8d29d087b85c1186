/** The shape of a daemon JSON-RPC method and notification: declared once, served by mlsd, called by frontends. */
import type { Static, TObject, TSchema } from "@sinclair/typebox"
import type { ErrorCode } from "../errors.js"

export interface MethodDescriptor<
  Name extends string = string,
  P extends TObject = TObject,
  R extends TSchema = TSchema,
> {
  /** `noun.verb`. */
  name: Name
  /** One line for `rpc.discover`. */
  summary: string
  /** What it does, in full, for `rpc.discover`. */
  description?: string
  /** Params by name; an omitted `params` is the empty object. */
  params: P
  result: R
  /** Application error codes this method can answer with (besides invalid params and `internal`). */
  errors: readonly ErrorCode[]
  /** Served only when the daemon runs with MLSD_TEST_CLOCK=1; never part of the public interface. */
  testOnly?: true
}

export interface NotificationDescriptor<Name extends string = string, P extends TObject = TObject> {
  /** `noun.pastParticiple`. */
  name: Name
  summary: string
  /** When it is sent and what it says, for `rpc.discover`. */
  description?: string
  params: P
}

export const method = <N extends string, P extends TObject, R extends TSchema>(
  d: MethodDescriptor<N, P, R>,
): MethodDescriptor<N, P, R> => d

export const notification = <N extends string, P extends TObject>(
  d: NotificationDescriptor<N, P>,
): NotificationDescriptor<N, P> => d

export type ParamsOf<D> = D extends MethodDescriptor<string, infer P, TSchema> ? Static<P> : never
export type ResultOf<D> = D extends MethodDescriptor<string, TObject, infer R> ? Static<R> : never
