// Random bytes for ts-mls and for this provider's own keys: the OS CSPRNG through node:crypto.
import { randomFillSync } from "node:crypto"
import type { Rng } from "ts-mls"

export function randomBytes(n: number): Uint8Array {
  return randomFillSync(new Uint8Array(n))
}

export const nodeRng: Rng = { randomBytes }
