/** Delivery calls for tests: create a group, post messages and Commits, reserve keys, read and acknowledge the inbox. */
import { http } from "./http.js"
import { fakeCommit, fakeMessage, newGroupId } from "./mls.js"
import type { TestUser } from "./users.js"

export interface TestGroup {
  id: string
  bytes: Uint8Array
  epoch: number
}

export async function createGroup(base: string, owner: TestUser): Promise<TestGroup> {
  const g = newGroupId()
  const r = await http(base, "POST", "/v1/groups", { token: owner.token, json: { groupId: g.id } })
  if (r.status !== 201) throw new Error(`create group: ${r.status} ${JSON.stringify(r.body)}`)
  return { ...g, epoch: 0 }
}

export const postMessage = (base: string, user: TestUser, g: TestGroup, message = fakeMessage(g.bytes, g.epoch)) =>
  http(base, "POST", `/v1/groups/${g.id}/messages`, { token: user.token, json: { message } })

export interface CommitOptions {
  commit?: string
  keyPackages?: { user: string; ref: string; reservationId: string }[]
  removes?: string[]
  welcome?: string
}

/** Posts a Commit at the group's epoch (or `opts.commit`); advances `g.epoch` when accepted. */
export async function postCommit(base: string, user: TestUser, g: TestGroup, opts: CommitOptions = {}) {
  const r = await http(base, "POST", `/v1/groups/${g.id}/commits`, {
    token: user.token,
    json: {
      commit: opts.commit ?? fakeCommit(g.bytes, g.epoch),
      keyPackages: opts.keyPackages ?? [],
      removes: opts.removes ?? [],
      ...(opts.welcome !== undefined && { welcome: opts.welcome }),
    },
  })
  if (r.status === 201) g.epoch = r.body.newEpoch
  return r
}

export async function reserve(base: string, by: TestUser, target: string) {
  const r = await http(base, "POST", "/v1/keypackages/reserve", { token: by.token, json: { target } })
  if (r.status !== 201) throw new Error(`reserve: ${r.status} ${JSON.stringify(r.body)}`)
  return { user: target, ref: r.body.ref as string, reservationId: r.body.reservationId as string }
}

export const readLog = (base: string, user: TestUser, g: TestGroup, after = 0, limit = 500) =>
  http(base, "GET", `/v1/groups/${g.id}/log?after=${after}&limit=${limit}`, { token: user.token })

export const readInbox = (base: string, user: TestUser, after = 0, limit = 500) =>
  http(base, "GET", `/v1/inbox?after=${after}&limit=${limit}`, { token: user.token })

export const ackInbox = (base: string, user: TestUser, upTo: number) =>
  http(base, "POST", "/v1/inbox/ack", { token: user.token, json: { upTo } })
