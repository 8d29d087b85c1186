/** The ciphersuite implementations the server verifies with, memoised. */
import {
  ciphersuites,
  getCiphersuiteFromName,
  getCiphersuiteImpl,
  type CiphersuiteImpl,
  type CiphersuiteName,
} from "ts-mls"

const impls = new Map<CiphersuiteName, Promise<CiphersuiteImpl | undefined>>()

/** The implementation of a suite, or undefined when this build cannot do that suite. */
export function suiteImpl(name: CiphersuiteName): Promise<CiphersuiteImpl | undefined> {
  let impl = impls.get(name)
  if (!impl) {
    impl = Object.hasOwn(ciphersuites, name)
      ? getCiphersuiteImpl(getCiphersuiteFromName(name)).catch(() => undefined)
      : Promise.resolve(undefined)
    impls.set(name, impl)
  }
  return impl
}
