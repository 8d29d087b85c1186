/** Every HTTP route of the server, declared once for the server and its clients. */
import * as auth from "./http/auth.js"
import * as keys from "./http/keys.js"
import type { RouteDescriptor } from "./http/route.js"

export * from "./http/errors.js"
export * from "./http/route.js"
export { auth, keys }

const isRoute = (v: unknown): v is RouteDescriptor =>
  typeof v === "object" && v !== null && "path" in v && "method" in v && "auth" in v

/** All route descriptors, for contract tests and documentation. */
export const routes: readonly RouteDescriptor[] = (
  [...Object.values(auth), ...Object.values(keys)] as unknown[]
).filter(isRoute)
