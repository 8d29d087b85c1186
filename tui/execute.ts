/** Runs a parsed input line against the daemon; answers and errors go into the reducer, in words. */
import type { Dispatch } from "react"
import type { DaemonClient } from "../daemon-client/index.js"
import type { Command } from "./commands.js"
import { commandHelp } from "./commands.js"
import { errorText } from "./hooks/useDaemon.js"
import { keyHelp } from "./keymap.js"
import type { Action, Panel } from "./state.js"

export interface ExecuteContext {
  client: DaemonClient | undefined
  /** The selected group's id, if any. */
  group: string | undefined
  dispatch: Dispatch<Action>
  quit: () => void
}

export const helpRows = [...commandHelp, ...keyHelp, ["text", "send to the group (//x sends /x)"]] as const

export async function execute(cmd: Command, { client, group, dispatch, quit }: ExecuteContext): Promise<void> {
  const notice = (kind: "info" | "error", text: string) => dispatch({ type: "notice", kind, text })
  const panel = (p: Panel) => dispatch({ type: "panel", panel: p })
  switch (cmd.kind) {
    case "none":
      return
    case "error":
      return notice("error", cmd.message)
    case "quit":
      return quit()
    case "help":
      return panel({ kind: "help" })
  }
  if (!client) return notice("error", "the daemon is not connected; wait for the status bar to say so")
  const needGroup = cmd.kind !== "create" && cmd.kind !== "pool" && cmd.kind !== "accept" && cmd.kind !== "decline"
  if (needGroup && !group) return notice("error", "no group selected: /create NAME first")
  const g = group!
  try {
    switch (cmd.kind) {
      case "send": {
        const result = await client.call("message.send", { group: g, text: cmd.text })
        dispatch({ type: "message.sent", result })
        if (result.state === "queued") notice("info", `queued: ${result.error ?? "the server is unreachable"}`)
        return
      }
      case "create": {
        const created = await client.call("group.create", { name: cmd.name })
        dispatch({ type: "group.changed", group: created, select: true })
        return notice("info", `created ${created.name}; /invite USER adds people`)
      }
      case "invite":
        for (const user of cmd.users) {
          try {
            dispatch({ type: "group.changed", group: await client.call("group.invite", { group: g, user }) })
            notice("info", `invited ${user}`)
          } catch (err) {
            notice("error", `invite ${user}: ${errorText(err)}`)
          }
        }
        return
      case "members": {
        const m = await client.call("group.members", { group: g })
        return panel({ kind: "members", group: m.name, members: m.members })
      }
      case "remove":
        dispatch({ type: "group.changed", group: await client.call("group.remove", { group: g, user: cmd.user }) })
        return notice("info", `removed ${cmd.user}`)
      case "leave": {
        const left = await client.call("group.leave", { group: g })
        return notice("info", `asked to leave ${left.name}; a member's daemon completes it`)
      }
      case "rotate": {
        const { epoch } = await client.call("group.selfUpdate", { group: g })
        return notice("info", `your keys in this group are rotated (epoch ${epoch})`)
      }
      case "rejoin": {
        const rejoined = await client.call("group.rejoin", { group: g })
        dispatch({ type: "group.changed", group: rejoined })
        return notice("info", `rejoined ${rejoined.name}; messages sent while you were out of sync are missing`)
      }
      case "accept":
      case "decline": {
        const { invitations } = await client.call("group.invites")
        const inv = cmd.name === undefined ? invitations[0] : invitations.find((i) => i.name === cmd.name)
        if (!inv) return notice("error", cmd.name ? `no pending invitation to ${cmd.name}` : "no pending invitation")
        if (cmd.kind === "decline") {
          await client.call("group.decline", { groupId: inv.groupId })
          return notice("info", `declined ${inv.inviter}'s invitation to ${inv.name}`)
        }
        const joined = await client.call("group.accept", { groupId: inv.groupId })
        dispatch({ type: "group.changed", group: joined, select: true })
        return notice("info", `joined ${joined.name}`)
      }
      case "pool": {
        const [status, { keys }] = await Promise.all([
          client.call("pool.status"),
          client.call("pool.list", { limit: 1000 }),
        ])
        return panel({ kind: "pool", status, keys })
      }
    }
  } catch (err) {
    notice("error", errorText(err))
  }
}
