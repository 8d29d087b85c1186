// The ts-mls CryptoProvider on node:crypto and libsodium; suites with a part it does not cover go to the stock one.
import { defaultCryptoProvider } from "ts-mls"
import type { CiphersuiteImpl, CryptoProvider } from "ts-mls"
import { makeHash } from "./hash.js"
import { makeHpke } from "./hpke.js"
import { makeKdf } from "./kdf.js"
import { nodeRng } from "./rng.js"
import { makeSignature } from "./signature.js"
import { nativeSuite } from "./suites.js"

export const nodeCryptoProvider: CryptoProvider = {
  async getCiphersuiteImpl(cs): Promise<CiphersuiteImpl> {
    const suite = nativeSuite(cs)
    if (suite === undefined) return defaultCryptoProvider.getCiphersuiteImpl(cs)
    return {
      hash: makeHash(suite.hash),
      kdf: makeKdf(suite.kdf),
      hpke: makeHpke(suite),
      signature: makeSignature(suite.signature),
      rng: nodeRng,
      name: cs.name,
    }
  },
}
