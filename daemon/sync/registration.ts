/**
 * First-run registration (DESIGN §2): proof of possession of the identity key. A `username_taken` answer is
 * checked by logging in with our key: when that works, the name was registered by an earlier attempt of ours whose
 * answer was lost, and registration has in fact succeeded.
 */
import { toBase64Url } from "../../rpc-schema/common.js"
import { AppError } from "../../rpc-schema/errors.js"
import { auth } from "../../rpc-schema/server/index.js"
import type { Session } from "./session.js"

export async function registerUser(session: Session, signatureKey: Uint8Array, sign: (t: string) => string) {
  const key = toBase64Url(signatureKey)
  const username = session.username
  try {
    await session.callPublic(auth.register, {
      body: { username, signatureKey: key, proof: sign(auth.registrationMessage(username, key)) },
    })
  } catch (err) {
    if (!(err instanceof AppError) || err.code !== "username_taken") throw err
    const ours = await session.call(auth.getUser, { params: { username } }).then(
      (u) => u.signatureKey === key,
      (e: unknown) => {
        if (e instanceof AppError && e.code === "server_unreachable") throw e
        return false
      },
    )
    if (!ours) throw err
  }
}
