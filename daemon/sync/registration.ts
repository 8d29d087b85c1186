/**
 * First run: this profile becomes a device of an account. `registerUser` creates the account with this device as its
 * first (DESIGN §2: proof of possession of the login key); a `username_taken` answer is checked by logging in with our
 * key: when that works, the account was created by an earlier attempt of ours whose answer was lost, and registration
 * has in fact succeeded. `linkDevice` redeems a one-time code made by a device of an existing account: the new device
 * brings its own fresh login key, so no private key ever crosses machines.
 */
import { toBase64Url } from "../../rpc-schema/common.js"
import { AppError } from "../../rpc-schema/errors.js"
import type { DeviceIdentity } from "../../rpc-schema/server/http/auth.js"
import { auth, devices } from "../../rpc-schema/server/index.js"
import type { ServerClient } from "./httpClient.js"
import type { Session } from "./session.js"

export async function registerUser(
  session: Session,
  loginKey: Uint8Array,
  sign: (t: string) => string,
): Promise<DeviceIdentity> {
  const key = toBase64Url(loginKey)
  const username = session.account.user
  try {
    const r = await session.callPublic(auth.register, {
      body: { username, signatureKey: key, proof: sign(auth.registrationMessage(username, key)) },
    })
    return { userId: r.userId, handle: r.handle, deviceId: r.deviceId, clientId: r.clientId }
  } catch (err) {
    if (!(err instanceof AppError) || err.code !== "username_taken") throw err
    // Logging in with our key works only if the account is ours.
    return session.whoami().catch((e: unknown) => {
      if (e instanceof AppError && e.code === "server_unreachable") throw e
      throw err
    })
  }
}

export async function linkDevice(
  client: ServerClient,
  code: string,
  loginKey: Uint8Array,
  sign: (t: string) => string,
): Promise<DeviceIdentity> {
  const key = toBase64Url(loginKey)
  const r = await client.call(devices.linkDevice, {
    body: { code, loginKey: key, proof: sign(devices.linkMessage(code, key)) },
  })
  return { userId: r.userId, handle: r.handle, deviceId: r.deviceId, clientId: r.clientId }
}
