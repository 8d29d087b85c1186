// Shared by the test-vector tests: loading the RFC 9420 interoperability vectors and the providers to run them on.
import { readFileSync } from "node:fs"
import { defaultCryptoProvider, getCiphersuiteFromName, getCiphersuiteImpl } from "ts-mls"
import type { CiphersuiteImpl, CiphersuiteName } from "ts-mls"
import { getCiphersuiteNameFromId } from "ts-mls/crypto/ciphersuite.js"
import type { CiphersuiteId } from "ts-mls/crypto/ciphersuite.js"
import { isNativeSuite, nodeCryptoProvider } from "../../crypto/index.js"

// Vendored in the repository (test/fixtures/rfc9420/README.md names their source), so a bare clone runs them.
const vectorsDir = new URL("../fixtures/rfc9420/", import.meta.url)

export function loadVectors<T extends { cipher_suite: number }>(file: string): T[] {
  return JSON.parse(readFileSync(new URL(file, vectorsDir), "utf8")) as T[]
}

export function hex(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, "hex"))
}

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex")
}

export function suiteName(id: number): CiphersuiteName {
  return getCiphersuiteNameFromId(id as CiphersuiteId)
}

export type ProviderKind = "native" | "stock"

/**
 * The providers a vector of suite `id` runs on: native for every suite node:crypto covers, and the stock provider for
 * suite 1 as a check on the test itself (its other suites need optional dependencies this project does not install).
 */
export function providersFor(id: number): ProviderKind[] {
  const name = suiteName(id)
  return [...(isNativeSuite(name) ? (["native"] as const) : []), ...(id === 1 ? (["stock"] as const) : [])]
}

export function implFor(kind: ProviderKind, id: number): Promise<CiphersuiteImpl> {
  const provider = kind === "native" ? nodeCryptoProvider : defaultCryptoProvider
  return getCiphersuiteImpl(getCiphersuiteFromName(suiteName(id)), provider)
}
