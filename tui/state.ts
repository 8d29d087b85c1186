/**
 * The TUI's whole view state and its pure reducer: daemon answers and notifications go in, what the screen shows
 * comes out. No I/O here (hooks/useDaemon.ts does the calls), so every transition is a plain unit test.
 */
import type { ConnectionState, DaemonStatusResult } from "../rpc-schema/daemon/daemon.js"
import type { GroupSummary } from "../rpc-schema/daemon/group.js"
import type { IdentityResult } from "../rpc-schema/daemon/identity.js"
import type { NotificationName, NotificationParams } from "../rpc-schema/daemon/index.js"
import type { MessageListResult, MessageSendResult } from "../rpc-schema/daemon/message.js"
import type { KeyInfo, PoolHealth, PoolStatusResult } from "../rpc-schema/daemon/pool.js"

/** `sent` (in the group log), `queued` (in the daemon's outbox, not taken by the server yet), `refused`. */
export type MessageState = "sent" | "queued" | "refused"

export interface ChatMessage {
  /** Stable React key: the seq once the server has it, else the outbox clientId. */
  key: string
  seq: number | null
  clientId: string | null
  sender: string
  text: string
  at: number
  own: boolean
  state: MessageState
  /** Why it was refused. */
  error?: string
}

export interface GroupView {
  groupId: string
  name: string
  members: string[]
  status: GroupSummary["status"]
  unread: number
  /** Oldest first. */
  messages: ChatMessage[]
  /** Whether the daemon holds older messages than the first one here (page on with `before`). */
  more: boolean
  /** Whether history was loaded since the last (re)connect. */
  loaded: boolean
}

/** The daemon link: the TUI's own socket connection, not the daemon's link to the server. */
export type DaemonLink = { kind: "connecting" } | { kind: "up" } | { kind: "down"; error: string; retryInMs: number }

export interface PoolSummary {
  available: number
  target: number
  health: PoolHealth
}

export interface Notice {
  id: number
  kind: "info" | "error"
  text: string
}

export type Panel =
  | { kind: "none" }
  | { kind: "help" }
  | {
      kind: "members"
      group: string
      members: { username: string; self: boolean; devices: { deviceId: string | null; self: boolean }[] }[]
    }
  | { kind: "pool"; status: PoolStatusResult; keys: KeyInfo[] }

export interface State {
  link: DaemonLink
  user: string | null
  server: string | null
  serverState: ConnectionState | null
  pool: PoolSummary | null
  groups: GroupView[]
  selected: string | null
  /** How many lines the message pane is scrolled up from the newest. */
  scroll: number
  notices: Notice[]
  panel: Panel
  /** The last notification id seen: `events.subscribe {after}` on reconnect replays what came since. */
  lastEventId: number
}

export const initialState: State = {
  link: { kind: "connecting" },
  user: null,
  server: null,
  serverState: null,
  pool: null,
  groups: [],
  selected: null,
  scroll: 0,
  notices: [],
  panel: { kind: "none" },
  lastEventId: 0,
}

/** Notices kept on screen (the newest at the bottom of the pane). */
const maxNotices = 3

type Notification = { [N in NotificationName]: { name: N; params: NotificationParams<N> } }[NotificationName]

export type Action =
  | { type: "link.connecting" }
  | { type: "link.down"; error: string; retryInMs: number }
  | {
      type: "link.up"
      status: DaemonStatusResult
      identity: IdentityResult
      pool: PoolStatusResult | null
      groups: GroupSummary[]
      lastEventId: number
    }
  | ({ type: "notification" } & Notification)
  | { type: "history.loaded"; groupId: string; page: MessageListResult; older: boolean }
  | { type: "message.sent"; result: MessageSendResult }
  | { type: "group.changed"; group: GroupSummary; select?: boolean }
  | { type: "select"; delta: number }
  /** Scrolls the message pane by whole messages, up to `max` (the view knows how many fit). */
  | { type: "scroll"; lines: number; max: number }
  | { type: "notice"; kind: Notice["kind"]; text: string }
  | { type: "panel"; panel: Panel }

export function poolSummary(s: PoolStatusResult): PoolSummary {
  return { available: s.available, target: s.demand.target, health: s.health }
}

function fromStored(m: MessageListResult["messages"][number]): ChatMessage {
  return {
    key: `s${m.seq}`,
    seq: m.seq,
    clientId: null,
    sender: m.sender,
    text: m.text,
    at: m.sentAt,
    own: m.own,
    state: "sent",
  }
}

function newGroup(g: GroupSummary): GroupView {
  return {
    groupId: g.groupId,
    name: g.name,
    members: g.members,
    status: g.status,
    unread: 0,
    messages: [],
    more: false,
    loaded: false,
  }
}

/** Adds a group or updates its roster and status, keeping its messages. */
function upsertGroup(
  groups: GroupView[],
  g: Pick<GroupSummary, "groupId" | "name" | "members"> & Partial<GroupSummary>,
) {
  const i = groups.findIndex((x) => x.groupId === g.groupId)
  if (i < 0) return [...groups, newGroup({ status: "active", epoch: 0, lastSeq: 0, joinedAt: 0, leaving: false, ...g })]
  const old = groups[i]!
  return groups.with(i, { ...old, name: g.name, members: g.members, status: g.status ?? old.status })
}

function mapGroup(state: State, groupId: string, f: (g: GroupView) => GroupView): State {
  return { ...state, groups: state.groups.map((g) => (g.groupId === groupId ? f(g) : g)) }
}

/** Messages ordered by seq, queued ones (no seq yet) last in the order they were made. */
function ordered(messages: ChatMessage[]): ChatMessage[] {
  return messages.toSorted((a, b) => (a.seq ?? Infinity) - (b.seq ?? Infinity) || a.at - b.at)
}

function withNotice(state: State, kind: Notice["kind"], text: string): State {
  const id = (state.notices.at(-1)?.id ?? 0) + 1
  return { ...state, notices: [...state.notices, { id, kind, text }].slice(-maxNotices) }
}

function onNotification(state: State, n: Notification): State {
  const s = { ...state, lastEventId: Math.max(state.lastEventId, n.params.eventId) }
  switch (n.name) {
    case "pool.changed":
      return { ...s, pool: poolSummary(n.params.status) }
    case "connection.changed":
      return { ...s, serverState: n.params.state, server: n.params.server ?? s.server }
    case "message.received": {
      const p = n.params
      const msg: ChatMessage = {
        key: `s${p.seq}`,
        seq: p.seq,
        clientId: null,
        sender: p.sender,
        text: p.text,
        at: p.sentAt,
        own: false,
        state: "sent",
      }
      return mapGroup(s, p.groupId, (g) =>
        g.messages.some((m) => m.seq === p.seq)
          ? g
          : {
              ...g,
              messages: ordered([...g.messages, msg]),
              unread: s.selected === g.groupId ? g.unread : g.unread + 1,
            },
      )
    }
    case "message.refused": {
      const p = n.params
      const refused = mapGroup(s, p.groupId, (g) => {
        const known = g.messages.some((m) => m.clientId === p.clientId)
        const msg: ChatMessage = {
          key: `c${p.clientId}`,
          seq: null,
          clientId: p.clientId,
          sender: s.user ?? "me",
          text: p.text,
          at: p.createdAt,
          own: true,
          state: "refused",
          error: p.message,
        }
        return {
          ...g,
          messages: known
            ? g.messages.map((m) => (m.clientId === p.clientId ? { ...m, state: "refused", error: p.message } : m))
            : ordered([...g.messages, msg]),
        }
      })
      return withNotice(refused, "error", `${p.group}: message refused (${p.code}): ${p.message}`)
    }
    case "group.joined": {
      const p = n.params
      const joined = { ...s, groups: upsertGroup(s.groups, p), selected: s.selected ?? p.groupId }
      return withNotice(joined, "info", `${p.by} added you to ${p.name}`)
    }
    case "group.updated": {
      const p = n.params
      const status = p.reason === "removed" ? "removed" : p.reason === "outOfSync" ? "out_of_sync" : undefined
      const updated = { ...s, groups: upsertGroup(s.groups, { ...p, status }) }
      const by = p.by ?? "someone"
      // Own changes were already told by the command's answer.
      if (p.by !== null && p.by === s.user && p.reason === "commit") return updated
      if (p.reason === "removed") return withNotice(updated, "error", `${by} removed you from ${p.name}`)
      if (p.reason === "leaveProposed") return withNotice(updated, "info", `${by} asked to leave ${p.name}`)
      if (p.reason === "outOfSync")
        return withNotice(updated, "error", `${p.name} is out of sync: ask a member to re-add you`)
      // A user already in the group with a device more or less is told by device.
      const devices = (ds: typeof p.addedDevices, users: string[]) =>
        ds.filter((d) => !users.includes(d.username)).map((d) => `${d.username}'s device ${d.deviceId ?? d.clientId}`)
      const added = [...p.added, ...devices(p.addedDevices, p.added)]
      const removed = [...p.removed, ...devices(p.removedDevices, p.removed)]
      const parts = [
        added.length ? `added ${added.join(", ")}` : "",
        removed.length ? `removed ${removed.join(", ")}` : "",
      ].filter(Boolean)
      return parts.length ? withNotice(updated, "info", `${p.name}: ${by} ${parts.join(" and ")}`) : updated
    }
    case "group.historyLost": {
      const p = n.params
      const lost = mapGroup(s, p.groupId, (g) => ({ ...g, status: p.status }))
      return withNotice(
        lost,
        "error",
        p.rejoined
          ? `${p.group}: rejoined; ${p.lost} log entries from while you were out of sync are missing`
          : `${p.group}: ${p.lost} log entries expired on the server before they were fetched` +
              (p.canContinue ? "" : "; the group is out of sync: /rejoin brings it back"),
      )
    }
    case "invite.failed":
      return withNotice(s, "error", `an invitation from ${n.params.by} failed (${n.params.code}): ${n.params.message}`)
    case "invite.received": {
      const p = n.params
      return withNotice(
        s,
        "info",
        `${p.inviter} invites you to ${p.name} (${p.members.join(", ")}): /accept ${p.name} or /decline ${p.name}`,
      )
    }
    case "credential.refused":
      return withNotice(
        s,
        "error",
        `a device of ${n.params.username ?? "an unknown account"} was refused (${n.params.clientId}): ${n.params.reason}`,
      )
    case "device.added":
      return withNotice(
        s,
        "info",
        n.params.own
          ? `this account has a new device ${n.params.deviceId}`
          : `${n.params.username} has a new device ${n.params.deviceId}: check with them that it is theirs`,
      )
    case "invites.expired":
      return withNotice(s, "error", `${n.params.count} invitations or notices expired on the server unread`)
    default:
      // A notification this TUI does not show yet (a newer daemon): only its id counts.
      return s
  }
}

export function reducer(state: State, action: Action): State {
  switch (action.type) {
    case "link.connecting":
      return { ...state, link: { kind: "connecting" } }
    case "link.down":
      return { ...state, link: { kind: "down", error: action.error, retryInMs: action.retryInMs } }
    case "link.up": {
      // Rosters come fresh from the daemon; messages loaded before stay, and are reloaded (loaded: false) since
      // queued ones may have been sent while the link was down.
      let groups = state.groups.filter((g) => action.groups.some((x) => x.groupId === g.groupId))
      for (const g of action.groups) groups = upsertGroup(groups, g)
      groups = groups.map((g) => ({ ...g, loaded: false }))
      const selected = groups.some((g) => g.groupId === state.selected) ? state.selected : (groups[0]?.groupId ?? null)
      return {
        ...state,
        link: { kind: "up" },
        user: action.identity.username ?? action.status.username,
        server: action.identity.server ?? action.status.server,
        serverState: action.status.connection,
        pool: action.pool ? poolSummary(action.pool) : null,
        groups,
        selected,
        lastEventId: Math.max(state.lastEventId, action.lastEventId),
      }
    }
    case "notification":
      return onNotification(state, action)
    case "history.loaded": {
      const { page } = action
      return mapGroup(state, action.groupId, (g) => {
        const stored = page.messages.map(fromStored)
        const queued: ChatMessage[] = page.queued.map((q) => ({
          key: `c${q.clientId}`,
          seq: null,
          clientId: q.clientId,
          sender: state.user ?? "me",
          text: q.text,
          at: q.createdAt,
          own: true,
          state: "queued",
        }))
        // A newest page replaces what was shown (keeping refused ones, which the daemon no longer lists); an older
        // page goes in front.
        const kept = action.older ? g.messages : g.messages.filter((m) => m.state === "refused")
        const bySeq = new Map<string, ChatMessage>()
        for (const m of [...kept, ...stored, ...(action.older ? [] : queued)]) bySeq.set(m.key, m)
        return {
          ...g,
          messages: ordered([...bySeq.values()]),
          more: action.older || !g.loaded ? page.more : g.more,
          loaded: true,
        }
      })
    }
    case "message.sent": {
      const r = action.result
      const msg: ChatMessage = {
        key: r.seq !== undefined ? `s${r.seq}` : `c${r.clientId}`,
        seq: r.seq ?? null,
        clientId: r.clientId,
        sender: r.sender,
        text: r.text,
        at: r.sentAt ?? Date.now(),
        own: true,
        state: r.state,
      }
      return mapGroup({ ...state, scroll: 0 }, r.groupId, (g) => ({
        ...g,
        messages: ordered([...g.messages.filter((m) => m.key !== msg.key), msg]),
      }))
    }
    case "group.changed": {
      const groups = upsertGroup(state.groups, action.group)
      return {
        ...state,
        groups,
        selected: action.select ? action.group.groupId : (state.selected ?? action.group.groupId),
      }
    }
    case "select": {
      const n = state.groups.length
      if (n === 0) return state
      const i = state.groups.findIndex((g) => g.groupId === state.selected)
      const next = state.groups[(((i < 0 ? 0 : i + action.delta) % n) + n) % n]!
      return mapGroup({ ...state, selected: next.groupId, scroll: 0 }, next.groupId, (g) => ({ ...g, unread: 0 }))
    }
    case "scroll":
      return { ...state, scroll: Math.min(action.max, Math.max(0, state.scroll + action.lines)) }
    case "notice":
      return withNotice(state, action.kind, action.text)
    case "panel":
      return { ...state, panel: action.panel }
  }
}

export function selectedGroup(state: State): GroupView | undefined {
  return state.groups.find((g) => g.groupId === state.selected)
}
