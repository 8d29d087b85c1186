/**
 * The other members of the `groups` benchmark's daemon at scale, in their own process: the first stdin line is the
 * job (`{"url", "members", "target"}`). It registers `members` users on the server, each uploading a KeyPackage
 * (which binds its MLS key in the directory, as the daemon's credential check wants), and the first of them, `m0`,
 * creates a group and adds the others and the target (its devices' KeyPackages reserved and spent on the server) in
 * one Commit with its Welcome: a group of members + 1. Only m0 then takes part, through the real server: `{"send": TEXT}` on stdin makes it post TEXT to the
 * group (answered `{"sent": TEXT}`), and every message it reads from its stream is answered `{"got": TEXT}`.
 * The others' MLS states are never used, so they are not kept. MLS through the daemon's own layer (daemon/mls).
 */
import { createInterface } from "node:readline"
import { decodeKeyPackage, encodeKeyPackage } from "ts-mls/keyPackage.js"
import { getSuite } from "../../crypto/index.js"
import type { CredentialCheck } from "../../daemon/mls/credentialCheck.js"
import { addMembers, createChatGroup } from "../../daemon/mls/group.js"
import type { ChatGroup } from "../../daemon/mls/groupState.js"
import { encryptText, processIncoming } from "../../daemon/mls/message.js"
import { fromBase64Url, toBase64Url } from "../../rpc-schema/common.js"
import { freshKeyPackage, type FreshKeyPackage } from "../daemon/mls/helpers.js"
import { createGroup, postCommit, postMessage } from "../helpers/groups.js"
import { http } from "../helpers/http.js"
import { StreamClient } from "../helpers/stream.js"
import { login, newIdentity, register, uploadKeyPackages } from "../helpers/users.js"

interface Job {
  url: string
  members: number
  target: string
}

const accept: CredentialCheck = async () => ({ kind: "accepted" })
const mlsUser = (m: { clientId: string; publicKey: Uint8Array; seed: Uint8Array }) => ({
  identity: m.clientId,
  keys: { publicKey: m.publicKey, privateKey: m.seed },
})
const say = (line: unknown) => process.stdout.write(JSON.stringify(line) + "\n")

/** Runs `op` over `items`, `width` at a time. */
async function eachLimited<T>(items: T[], width: number, op: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await op(items[next++]!)
    }),
  )
}

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]()
const job = JSON.parse(((await lines.next()).value as string) ?? "{}") as Job
const cs = await getSuite()

interface Member {
  name: string
  publicKey: Uint8Array
  seed: Uint8Array
  token: string
  clientId: string
}

// Each member is an account with one device whose login key is also its MLS key; uploading a KeyPackage binds that
// key in the directory, where the daemon checks every credential of the group.
const members: Member[] = []
const users = Array.from({ length: job.members }, (_, i) => ({ name: `m${i}`, ...newIdentity() }))
const keyPackages = new Map<string, FreshKeyPackage>()
await eachLimited(users, 16, async (u) => {
  const r = await register(job.url, u.name, u)
  if (r.status !== 201) throw new Error(`register ${u.name}: ${r.status} ${JSON.stringify(r.body)}`)
  const member = { ...u, token: await login(job.url, u.name, u, r.body.deviceId), clientId: r.body.clientId as string }
  const fresh = await freshKeyPackage(mlsUser(member), cs)
  const up = await uploadKeyPackages(job.url, member, [toBase64Url(encodeKeyPackage(fresh.keyPackage))])
  if (up.status !== 200 || up.body.results[0].status !== "accepted")
    throw new Error(`upload ${u.name}: ${up.status} ${JSON.stringify(up.body)}`)
  keyPackages.set(u.name, fresh)
  members.push(member)
})
members.sort((a, b) => Number(a.name.slice(1)) - Number(b.name.slice(1)))
const m0 = members[0]!

const serverGroup = await createGroup(job.url, m0)
let group: ChatGroup = await createChatGroup({
  name: "big",
  creator: mlsUser(m0),
  now: Date.now(),
  cs,
  groupId: serverGroup.bytes,
})
const held = await http(job.url, "POST", "/v1/keypackages/reserve", { token: m0.token, json: { target: job.target } })
if (held.status !== 201) throw new Error(`reserve: ${held.status} ${JSON.stringify(held.body)}`)
const targets = held.body.keyPackages as { clientId: string; ref: string; reservationId: string; keyPackage: string }[]
const listed = await http(job.url, "GET", `/v1/users/${job.target}`, { token: m0.token })
const mlsKeys = new Map(
  (listed.body.devices as { clientId: string; mlsKey: string }[]).map((d) => [d.clientId, fromBase64Url(d.mlsKey)]),
)
// The others are added with the KeyPackages they uploaded (no reservation: the server needs none to deliver to m0
// and the target, the only ones who read), the target with the ones reserved.
const pending = await addMembers(
  group,
  [
    ...members.slice(1).map((m) => ({
      identity: m.clientId,
      signaturePublicKey: m.publicKey,
      keyPackage: keyPackages.get(m.name)!.keyPackage,
    })),
    ...targets.map((t) => ({
      identity: t.clientId,
      signaturePublicKey: mlsKeys.get(t.clientId)!,
      keyPackage: decodeKeyPackage(fromBase64Url(t.keyPackage), 0)![0],
    })),
  ],
  Date.now(),
  cs,
  accept,
)
const posted = await postCommit(job.url, m0, serverGroup, {
  commit: toBase64Url(pending.commit),
  keyPackages: targets.map((t) => ({ user: job.target, ref: t.ref, reservationId: t.reservationId })),
  welcome: toBase64Url(pending.welcome!),
})
if (posted.status !== 201) throw new Error(`commit: ${posted.status} ${JSON.stringify(posted.body)}`)
group = pending.state

// m0's state goes through one queue: the entries of its stream, in order, and its sends.
let queue = Promise.resolve()
const serially = (op: () => Promise<void>) => {
  queue = queue.then(op).catch((err: unknown) => {
    console.error(err)
    process.exit(1)
  })
}
const stream = await StreamClient.connect(job.url, m0.token, { groups: new Map([[serverGroup.id, 0]]) })
let read = 0
stream.ws.on("message", () =>
  serially(async () => {
    const entries = stream.entries(serverGroup.id)
    for (; read < entries.length; read++) {
      // Its own posts come back too: they are in its state already.
      if (entries[read]!.senderClientId === m0.clientId) continue
      const incoming = await processIncoming(group, fromBase64Url(entries[read]!.message), cs, accept)
      group = incoming.state
      if (incoming.kind === "application") say({ got: incoming.text })
    }
  }),
)
say({ ready: serverGroup.id, members: job.members + 1 })

for (;;) {
  const next = await lines.next()
  if (next.done === true) break
  const { send } = JSON.parse(next.value as string) as { send: string }
  serially(async () => {
    const sent = await encryptText(group, send, cs)
    group = sent.state
    const r = await postMessage(job.url, m0, serverGroup, toBase64Url(sent.message))
    if (r.status !== 201) throw new Error(`post: ${r.status} ${JSON.stringify(r.body)}`)
    say({ sent: send })
  })
}
await queue
await stream.close()
