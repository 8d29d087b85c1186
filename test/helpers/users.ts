/** Test users: an Ed25519 identity, registration and login against a real server, KeyPackages made with ts-mls. */
import { generateKeyPairSync, sign, type JsonWebKey } from "node:crypto"
import { defaultCapabilities, generateKeyPackageWithKey, type CiphersuiteImpl, type KeyPackage } from "ts-mls"
import { encodeKeyPackage } from "ts-mls/keyPackage.js"
import { getSuite } from "../../crypto/index.js"
import { fromBase64Url, toBase64Url } from "../../rpc-schema/common.js"
import { loginMessage, registrationMessage } from "../../rpc-schema/server/http/auth.js"
import { http } from "./http.js"

/** The ciphersuite tests make KeyPackages with: the native provider, as the daemon uses. */
export const testSuite = (): Promise<CiphersuiteImpl> => getSuite()

export interface Identity {
  /** 32-byte Ed25519 seed. */
  seed: Uint8Array
  /** 32-byte Ed25519 public key. */
  publicKey: Uint8Array
}

export function newIdentity(): Identity {
  // JWK asked for at generation time: exporting fresh OKP keys later can hang Node 20 (NOTES.md).
  const { publicKey, privateKey } = generateKeyPairSync("ed25519", {
    publicKeyEncoding: { format: "jwk" },
    privateKeyEncoding: { format: "jwk" },
  }) as unknown as { publicKey: JsonWebKey; privateKey: JsonWebKey }
  return { seed: fromBase64Url(privateKey.d!), publicKey: fromBase64Url(publicKey.x!) }
}

export function signText(id: Identity, text: string): string {
  const key = {
    key: { kty: "OKP", crv: "Ed25519", d: toBase64Url(id.seed), x: toBase64Url(id.publicKey) },
    format: "jwk",
  }
  return toBase64Url(sign(null, Buffer.from(text, "utf8"), key as never))
}

export interface TestUser extends Identity {
  name: string
  token: string
}

export async function register(base: string, name: string, id = newIdentity()) {
  const signatureKey = toBase64Url(id.publicKey)
  return http(base, "POST", "/v1/users", {
    json: { username: name, signatureKey, proof: signText(id, registrationMessage(name, signatureKey)) },
  })
}

export async function login(base: string, name: string, id: Identity): Promise<string> {
  const c = await http(base, "POST", "/v1/sessions/challenge", { json: { username: name } })
  if (c.status !== 201) throw new Error(`challenge: ${c.status} ${JSON.stringify(c.body)}`)
  const s = await http(base, "POST", "/v1/sessions", {
    json: { challengeId: c.body.challengeId, signature: signText(id, loginMessage(name, c.body.nonce)) },
  })
  if (s.status !== 201) throw new Error(`login: ${s.status} ${JSON.stringify(s.body)}`)
  return s.body.token
}

/** Registers `name` with a fresh identity and logs in. */
export async function newUser(base: string, name: string): Promise<TestUser> {
  const id = newIdentity()
  const r = await register(base, name, id)
  if (r.status !== 201) throw new Error(`register ${name}: ${r.status} ${JSON.stringify(r.body)}`)
  return { name, ...id, token: await login(base, name, id) }
}

export interface KeyPackageOptions {
  /** Identity named in the credential (default: the user's name). */
  identity?: string
  /** Key that signs and is named as the leaf signature key (default: the user's). */
  signer?: Identity
  /** Lifetime in ms since the epoch (default: now-1 h .. now+14 d). */
  notBefore?: number
  notAfter?: number
  now?: number
}

export async function makeKeyPackage(
  user: Identity & { name: string },
  opts: KeyPackageOptions = {},
): Promise<KeyPackage> {
  const now = opts.now ?? Date.now()
  const signer = opts.signer ?? user
  const { publicPackage } = await generateKeyPackageWithKey(
    { credentialType: "basic", identity: new TextEncoder().encode(opts.identity ?? user.name) },
    defaultCapabilities(),
    {
      notBefore: BigInt(Math.floor((opts.notBefore ?? now - 3600_000) / 1000)),
      notAfter: BigInt(Math.floor((opts.notAfter ?? now + 14 * 24 * 3600_000) / 1000)),
    },
    [],
    { signKey: signer.seed, publicKey: signer.publicKey },
    await testSuite(),
  )
  return publicPackage
}

export const encodeKp = (kp: KeyPackage) => toBase64Url(encodeKeyPackage(kp))

export async function makeEncodedKeyPackages(
  user: Identity & { name: string },
  n: number,
  opts: KeyPackageOptions = {},
): Promise<string[]> {
  return Promise.all(Array.from({ length: n }, () => makeKeyPackage(user, opts).then(encodeKp)))
}

export async function uploadKeyPackages(base: string, user: TestUser, encoded: string[]) {
  return http(base, "POST", `/v1/users/${user.name}/keypackages`, { token: user.token, json: { keyPackages: encoded } })
}

export const makeEncodedKeyPackage = async (user: Identity & { name: string }, opts: KeyPackageOptions = {}) =>
  encodeKp(await makeKeyPackage(user, opts))
