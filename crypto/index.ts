// The crypto provider every part of mls-chat uses: `await getSuite()` gives the native CiphersuiteImpl.
import { getCiphersuiteFromName } from "ts-mls"
import type { CiphersuiteImpl, CiphersuiteName } from "ts-mls"
import { nodeCryptoProvider } from "./nodeProvider.js"
import { nativeSuite } from "./suites.js"

export { nodeCryptoProvider } from "./nodeProvider.js"

/** The ciphersuite mls-chat uses unless told otherwise (RFC 9420 §17.1, suite 1). */
export const defaultSuite = "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519" as const

const suites = new Map<CiphersuiteName, Promise<CiphersuiteImpl>>()

/** The CiphersuiteImpl of `name` from nodeCryptoProvider, built once per name. */
export function getSuite(name: CiphersuiteName = defaultSuite): Promise<CiphersuiteImpl> {
  let suite = suites.get(name)
  if (suite === undefined) {
    suite = nodeCryptoProvider.getCiphersuiteImpl(getCiphersuiteFromName(name))
    // A failed build (e.g. a missing optional dependency of the stock fallback) is not memoised.
    suite.catch(() => suites.delete(name))
    suites.set(name, suite)
  }
  return suite
}

/** Whether `name` runs on the native provider; the others fall back to ts-mls's stock provider. */
export function isNativeSuite(name: CiphersuiteName): boolean {
  return nativeSuite(getCiphersuiteFromName(name)) !== undefined
}
