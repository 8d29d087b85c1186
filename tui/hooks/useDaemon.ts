/**
 * The TUI's link to its daemon: connects to the socket, subscribes to every notification (after the last event id
 * seen, so a reconnect replays what was missed), loads the state the screen starts from, and reconnects by itself
 * with backoff when the daemon goes away. Everything goes into the reducer as actions; nothing here draws.
 */
import { useEffect, useRef, type Dispatch } from "react"
import { DaemonClient, DaemonError } from "../../daemon-client/index.js"
import { notifications, type NotificationName } from "../../rpc-schema/daemon/index.js"
import type { Action } from "../state.js"

const firstRetryMs = 250
const maxRetryMs = 5_000
/** Messages a group's first history page holds; older pages load as the pane scrolls up. */
export const pageSize = 100

/** An error as one line of words: the daemon's `code: message`, or the socket's message. Never a stack. */
export function errorText(err: unknown): string {
  if (err instanceof DaemonError) return err.appCode ? `${err.appCode}: ${err.message}` : err.message
  const code = (err as NodeJS.ErrnoException).code
  if (code === "ENOENT" || code === "ECONNREFUSED") return "no daemon answers on its socket"
  return err instanceof Error ? err.message : String(err)
}

export interface DaemonHandle {
  /** The connected client, or undefined while the daemon is away. */
  client(): DaemonClient | undefined
  /** Loads a group's newest page, or the page before `before`; errors become notices. */
  loadHistory(groupId: string, before?: number): Promise<void>
}

export function useDaemon(socketPath: string, dispatch: Dispatch<Action>, lastEventId: () => number): DaemonHandle {
  const current = useRef<DaemonClient | undefined>(undefined)
  const loading = useRef(new Set<string>())

  useEffect(() => {
    let stopped = false
    let timer: NodeJS.Timeout | undefined
    let delay = firstRetryMs

    const retry = (err: unknown) => {
      current.current = undefined
      if (stopped) return
      dispatch({ type: "link.down", error: errorText(err), retryInMs: delay })
      timer = setTimeout(() => void connect(), delay)
      delay = Math.min(maxRetryMs, delay * 2)
    }

    const connect = async () => {
      dispatch({ type: "link.connecting" })
      let c: DaemonClient
      try {
        c = await DaemonClient.connect(socketPath)
      } catch (err) {
        return retry(err)
      }
      if (stopped) return c.close()
      let failure: unknown // a failed call below closes the link: retry() shows that error, not the close
      c.onClose((err) => retry(failure ?? err))
      for (const name of Object.keys(notifications) as NotificationName[]) {
        c.on(name, (params) => dispatch({ type: "notification", name, params } as Action))
      }
      try {
        // Subscribe first, then read the state: whatever happens in between arrives as a notification. The first
        // connection only wants live events; a reconnect replays those after the last one seen.
        const after = lastEventId()
        const sub = await c.call("events.subscribe", after > 0 ? { after } : {})
        const [status, identity, { groups }] = await Promise.all([
          c.call("daemon.status"),
          c.call("identity.get"),
          c.call("group.list"),
        ])
        const pool = identity.registered ? await c.call("pool.status") : null
        current.current = c
        delay = firstRetryMs
        dispatch({ type: "link.up", status, identity, pool, groups, lastEventId: sub.lastEventId })
      } catch (err) {
        failure = err
        c.close()
      }
    }

    void connect()
    return () => {
      stopped = true
      clearTimeout(timer)
      current.current?.close()
    }
  }, [socketPath, dispatch, lastEventId])

  return {
    client: () => current.current,
    async loadHistory(groupId, before) {
      const c = current.current
      const key = `${groupId}:${before ?? "newest"}`
      if (!c || loading.current.has(key)) return
      loading.current.add(key)
      try {
        const page = await c.call("message.list", { group: groupId, limit: pageSize, ...(before ? { before } : {}) })
        dispatch({ type: "history.loaded", groupId, page, older: before !== undefined })
      } catch (err) {
        dispatch({ type: "notice", kind: "error", text: `history: ${errorText(err)}` })
      } finally {
        loading.current.delete(key)
      }
    },
  }
}
