/** Pending invitations (`invites = ask`): a Welcome kept until `group.accept` or `group.decline`. */
import { toBase64Url } from "../../rpc-schema/common.js"
import type { Invitation } from "../../rpc-schema/daemon/group.js"
import type { Db } from "./database.js"

export interface StoredInvitation {
  groupId: string
  keyRef: string
  inviter: string
  name: string
  members: string[]
  seq: number
  epoch: number
  welcome: Uint8Array
  receivedAt: number
}

interface Row {
  group_id: string
  key_ref: string
  inviter: string
  name: string
  members: string
  seq: number
  epoch: number
  welcome: Buffer
  received_at: number
}

const fromRow = (r: Row): StoredInvitation => ({
  groupId: r.group_id,
  keyRef: r.key_ref,
  inviter: r.inviter,
  name: r.name,
  members: JSON.parse(r.members) as string[],
  seq: r.seq,
  epoch: r.epoch,
  welcome: new Uint8Array(r.welcome),
  receivedAt: r.received_at,
})

/** What `group.invites` and `invite.received` show of an invitation. */
export function invitationView(i: StoredInvitation): Invitation {
  return {
    groupId: i.groupId,
    name: i.name,
    inviter: i.inviter,
    members: i.members,
    epoch: i.epoch,
    receivedAt: i.receivedAt,
  }
}

export class InvitationStore {
  constructor(private readonly db: Db) {}

  get(groupId: string): StoredInvitation | undefined {
    const r = this.db.prepare<[string], Row>("SELECT * FROM invitations WHERE group_id = ?").get(groupId)
    return r && fromRow(r)
  }

  /** Oldest first. */
  all(): StoredInvitation[] {
    return this.db.prepare<[], Row>("SELECT * FROM invitations ORDER BY received_at, group_id").all().map(fromRow)
  }

  /** Stores an invitation, replacing a pending one of the same group (a later Welcome supersedes it). */
  put(i: StoredInvitation): void {
    this.db
      .prepare(
        `INSERT OR REPLACE INTO invitations (group_id, key_ref, inviter, name, members, seq, epoch, welcome, received_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(i.groupId, i.keyRef, i.inviter, i.name, JSON.stringify(i.members), i.seq, i.epoch, i.welcome, i.receivedAt)
  }

  delete(groupId: string): void {
    this.db.prepare("DELETE FROM invitations WHERE group_id = ?").run(groupId)
  }
}

/** The inbox item an invitation was stored from, to join from it as the stream would have. */
export function invitationItem(i: StoredInvitation) {
  return {
    kind: "welcome" as const,
    groupId: i.groupId,
    seq: i.seq,
    epoch: i.epoch,
    by: i.inviter,
    welcome: toBase64Url(i.welcome),
  }
}
