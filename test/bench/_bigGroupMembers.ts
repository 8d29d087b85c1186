/**
 * The other members of the `groups` benchmark's daemon at scale, in their own process: the first stdin line is the
 * job (`{"url", "members", "target"}`). It registers `members` users on the server (their keys in the directory, as
 * the daemon's credential check wants), and the first of them, `m0`, creates a group and adds the others and the
 * target (one of its KeyPackages reserved and spent on the server) in one Commit with its Welcome: a group of
 * members + 1. Only m0 then takes part, through the real server: `{"send": TEXT}` on stdin makes it post TEXT to the
 * group (answered `{"sent": TEXT}`), and every message it reads from its stream is answered `{"got": TEXT}`.
 * The others' MLS states are never used, so they are not kept. MLS through the daemon's own layer (daemon/mls).
 */
import { createInterface } from "node:readline"
import { decodeKeyPackage } from "ts-mls/keyPackage.js"
import { getSuite } from "../../crypto/index.js"
import type { CredentialCheck } from "../../daemon/mls/credentialCheck.js"
import { addMembers, createChatGroup } from "../../daemon/mls/group.js"
import type { ChatGroup } from "../../daemon/mls/groupState.js"
import { encryptText, processIncoming } from "../../daemon/mls/message.js"
import { fromBase64Url, toBase64Url } from "../../rpc-schema/common.js"
import { freshKeyPackage } from "../daemon/mls/helpers.js"
import { createGroup, postCommit, postMessage } from "../helpers/groups.js"
import { http } from "../helpers/http.js"
import { StreamClient } from "../helpers/stream.js"
import { login, newIdentity, register } from "../helpers/users.js"

interface Job {
  url: string
  members: number
  target: string
}

const accept: CredentialCheck = async () => ({ kind: "accepted" })
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

const users = Array.from({ length: job.members }, (_, i) => ({ name: `m${i}`, ...newIdentity() }))
await eachLimited(users, 16, async (u) => {
  const r = await register(job.url, u.name, u)
  if (r.status !== 201) throw new Error(`register ${u.name}: ${r.status} ${JSON.stringify(r.body)}`)
  clientIds.set(u.name, r.body.clientId as string)
})
const m0 = { ...users[0]!, token: await login(job.url, users[0]!.name, users[0]!) }
const clientIds = new Map<string, string>()
const mlsUser = (u: (typeof users)[number]) => ({
  identity: clientIds.get(u.name)!,
  keys: { publicKey: u.publicKey, privateKey: u.seed },
})

const serverGroup = await createGroup(job.url, m0)
let group: ChatGroup = await createChatGroup({
  name: "big",
  creator: mlsUser(users[0]!),
  now: Date.now(),
  cs,
  groupId: serverGroup.bytes,
})
const others = await Promise.all(users.slice(1).map((u) => freshKeyPackage(mlsUser(u), cs)))
const held = await http(job.url, "POST", "/v1/keypackages/reserve", { token: m0.token, json: { target: job.target } })
if (held.status !== 201) throw new Error(`reserve: ${held.status} ${JSON.stringify(held.body)}`)
const listed = await http(job.url, "GET", `/v1/users/${job.target}`, { token: m0.token })
const targetKey = fromBase64Url(listed.body.signatureKey as string)
const targetKeyPackage = decodeKeyPackage(fromBase64Url(held.body.keyPackage as string), 0)![0]
const pending = await addMembers(
  group,
  [
    ...users.slice(1).map((u, i) => ({
      identity: clientIds.get(u.name)!,
      signaturePublicKey: u.publicKey,
      keyPackage: others[i]!.keyPackage,
    })),
    { identity: held.body.clientId as string, signaturePublicKey: targetKey, keyPackage: targetKeyPackage },
  ],
  Date.now(),
  cs,
  accept,
)
const posted = await postCommit(job.url, m0, serverGroup, {
  commit: toBase64Url(pending.commit),
  keyPackages: [{ user: job.target, ref: held.body.ref as string, reservationId: held.body.reservationId as string }],
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
      if (entries[read]!.sender === m0.name) continue
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
