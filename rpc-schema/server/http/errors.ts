/** The error body of every non-2xx HTTP answer (DESIGN §2). */
import { Type, type Static } from "@sinclair/typebox"
import { errorTable } from "../../errors.js"

export const ErrorBody = Type.Object({
  error: Type.Object({
    /** A stable snake_case code of rpc-schema/errors.ts. */
    code: Type.Union(Object.keys(errorTable).map((c) => Type.Literal(c))),
    /** Human text; generic for 5xx. */
    message: Type.String(),
    /** Machine-readable extras, e.g. `retryAfterS` or `currentEpoch`. */
    details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  }),
})
export type ErrorBody = Static<typeof ErrorBody>
