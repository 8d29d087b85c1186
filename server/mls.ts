/** The ciphersuite implementations the server verifies with: the native provider, memoised there. */
import { ciphersuites, type CiphersuiteImpl, type CiphersuiteName } from "ts-mls"
import { getSuite } from "../crypto/index.js"

/** The implementation of a suite, or undefined when this build cannot do that suite. */
export function suiteImpl(name: CiphersuiteName): Promise<CiphersuiteImpl | undefined> {
  if (!Object.hasOwn(ciphersuites, name)) return Promise.resolve(undefined)
  return getSuite(name).catch(() => undefined)
}
