/** The bottom line: user and server, the daemon link, the server link, pool health. */
import { Box, Text } from "ink"
import type { ConnectionState } from "../../rpc-schema/daemon/daemon.js"
import type { PoolHealth } from "../../rpc-schema/daemon/pool.js"
import type { DaemonLink, PoolSummary } from "../state.js"

export const healthColor: Record<PoolHealth, string> = {
  good: "green",
  low: "yellow",
  critical: "red",
  exhausted: "red",
  degraded: "red",
}

const serverColor: Record<ConnectionState, string> = {
  connected: "green",
  connecting: "yellow",
  disconnected: "red",
  offline: "gray",
}

export interface StatusBarProps {
  user: string | null
  server: string | null
  serverState: ConnectionState | null
  link: DaemonLink
  pool: PoolSummary | null
}

export function StatusBar({ user, server, serverState, link, pool }: StatusBarProps) {
  const host = server?.replace(/^https?:\/\//, "").replace(/\/$/, "") ?? "no server"
  if (link.kind === "down") {
    return (
      <Box>
        <Text color="red" bold wrap="truncate-end">
          daemon gone: {link.error}; retrying in {Math.ceil(link.retryInMs / 1000)} s
        </Text>
      </Box>
    )
  }
  return (
    <Box>
      <Text wrap="truncate-end">
        <Text bold>{user ?? "not registered"}</Text>
        <Text> @ {host} │ </Text>
        {link.kind === "connecting" ? (
          <Text color="yellow">connecting to the daemon…</Text>
        ) : (
          <Text color={serverState ? serverColor[serverState] : "gray"}>server {serverState ?? "unknown"}</Text>
        )}
        {pool && (
          <>
            <Text> │ </Text>
            <Text color={healthColor[pool.health]}>
              pool {pool.available}/{pool.target} ●
            </Text>
            {pool.health !== "good" && <Text color={healthColor[pool.health]}> {pool.health}</Text>}
          </>
        )}
      </Text>
    </Box>
  )
}
