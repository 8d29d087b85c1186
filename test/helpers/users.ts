/** Test users: an Ed25519 identity, registration and login against a real server, KeyPackages made with ts-mls. */
import { generateKeyPairSync, sign, type JsonWebKey } from "node:crypto"
import { defaultCapabilities, generateKeyPackageWithKey, type CiphersuiteImpl, type KeyPackage } from "ts-mls"
import { encodeKeyPackage } from "ts-mls/keyPackage.js"
import { getSuite } from "../../crypto/index.js"
import { fromBase64Url, toBase64Url } from "../../rpc-schema/common.js"
import { loginMessage, registrationMessage } from "../../rpc-schema/server/http/auth.js"
import { addDeviceMessage, linkMessage } from "../../rpc-schema/server/http/devices.js"
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

/** Logs in as device `deviceId` of account `name` (handle or user id; default device: the oldest active one). */
export async function login(base: string, name: string, id: Identity, deviceId?: string): Promise<string> {
  const c = await http(base, "POST", "/v1/sessions/challenge", {
    json: { username: name, ...(deviceId !== undefined && { deviceId }) },
  })
  if (c.status !== 201) throw new Error(`challenge: ${c.status} ${JSON.stringify(c.body)}`)
  const s = await http(base, "POST", "/v1/sessions", {
    json: { challengeId: c.body.challengeId, signature: signText(id, loginMessage(c.body.handle, c.body.nonce)) },
  })
  if (s.status !== 201) throw new Error(`login: ${s.status} ${JSON.stringify(s.body)}`)
  return s.body.token
}

/** A logged-in device of a test account: its login key is also its MLS key unless a test binds another. */
export interface TestDevice extends TestUser {
  userId: string
  deviceId: string
  clientId: string
}

/** Registers `name` with a fresh identity and logs in: the account's first device. */
export async function newUser(base: string, name: string): Promise<TestDevice> {
  const id = newIdentity()
  const r = await register(base, name, id)
  if (r.status !== 201) throw new Error(`register ${name}: ${r.status} ${JSON.stringify(r.body)}`)
  const { userId, deviceId, clientId } = r.body
  return { name, ...id, token: await login(base, name, id, deviceId), userId, deviceId, clientId }
}

/** A new device of `of`'s account, linked with a one-time code `of` asks for, and logged in. */
export async function linkDevice(base: string, of: TestUser): Promise<TestDevice> {
  const c = await http(base, "POST", "/v1/devices/link-codes", { token: of.token })
  if (c.status !== 201) throw new Error(`link code: ${c.status} ${JSON.stringify(c.body)}`)
  const id = newIdentity()
  const loginKey = toBase64Url(id.publicKey)
  const r = await http(base, "POST", "/v1/devices/link", {
    json: { code: c.body.code, loginKey, proof: signText(id, linkMessage(c.body.code, loginKey)) },
  })
  if (r.status !== 201) throw new Error(`link: ${r.status} ${JSON.stringify(r.body)}`)
  const { userId, deviceId, clientId } = r.body
  return { name: of.name, ...id, token: await login(base, of.name, id, deviceId), userId, deviceId, clientId }
}

/** A new device added directly by the authenticated device `by` of account `userId`, and logged in. */
export async function addDevice(base: string, by: TestDevice): Promise<TestDevice> {
  const id = newIdentity()
  const loginKey = toBase64Url(id.publicKey)
  const r = await http(base, "POST", "/v1/devices", {
    token: by.token,
    json: { loginKey, proof: signText(id, addDeviceMessage(by.userId, loginKey)) },
  })
  if (r.status !== 201) throw new Error(`add device: ${r.status} ${JSON.stringify(r.body)}`)
  const { userId, deviceId, clientId } = r.body
  return { name: by.name, ...id, token: await login(base, by.name, id, deviceId), userId, deviceId, clientId }
}

export interface KeyPackageOptions {
  /** Identity named in the credential (default: the device's client id, else the user's name). */
  identity?: string
  /** Key that signs and is named as the leaf signature key (default: the user's). */
  signer?: Identity
  /** Lifetime in ms since the epoch (default: now-1 h .. now+14 d). */
  notBefore?: number
  notAfter?: number
  now?: number
}

export async function makeKeyPackage(
  user: Identity & { name: string; clientId?: string },
  opts: KeyPackageOptions = {},
): Promise<KeyPackage> {
  const now = opts.now ?? Date.now()
  const signer = opts.signer ?? user
  const { publicPackage } = await generateKeyPackageWithKey(
    { credentialType: "basic", identity: new TextEncoder().encode(opts.identity ?? user.clientId ?? user.name) },
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
  user: Identity & { name: string; clientId?: string },
  n: number,
  opts: KeyPackageOptions = {},
): Promise<string[]> {
  return Promise.all(Array.from({ length: n }, () => makeKeyPackage(user, opts).then(encodeKp)))
}

export async function uploadKeyPackages(base: string, user: TestUser, encoded: string[]) {
  return http(base, "POST", `/v1/users/${user.name}/keypackages`, { token: user.token, json: { keyPackages: encoded } })
}

export const makeEncodedKeyPackage = async (
  user: Identity & { name: string; clientId?: string },
  opts: KeyPackageOptions = {},
) => encodeKp(await makeKeyPackage(user, opts))
