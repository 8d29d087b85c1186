/** Every HTTP route of the server, declared once for the server and its clients. */
export * from "./http/errors.js"
export * from "./http/route.js"
export * as auth from "./http/auth.js"
export * as keys from "./http/keys.js"
