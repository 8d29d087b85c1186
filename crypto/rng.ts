import { randomFillSync } from "node:crypto"
import type { Rng } from "ts-mls"

export const nodeRng: Rng = {
  randomBytes(n) {
    return randomFillSync(new Uint8Array(n))
  },
}
