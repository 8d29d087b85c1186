/** `/pool`: keys by state, expiring soon, last upload, last pass and its error, who reserved which keys lately. */
import { Box, Text } from "ink"
import type { KeyInfo, PoolStatusResult } from "../../rpc-schema/daemon/pool.js"
import { clock, fit } from "../format.js"
import { recentReservations } from "../reservations.js"
import { healthColor } from "./StatusBar.js"

export interface PoolPanelProps {
  status: PoolStatusResult
  keys: KeyInfo[]
  width: number
  height: number
  now?: number
}

export function PoolPanel({ status: s, keys, width, height, now = Date.now() }: PoolPanelProps) {
  const inner = width - 4
  const when = (ms: number | null | undefined) => (ms ? clock(ms, now) : "never")
  const pass = s.lastPass
  const reservations = recentReservations(keys)
  return (
    <Box flexDirection="column" flexGrow={1} height={height} borderStyle="round" paddingX={1} overflow="hidden">
      <Text wrap="truncate-end">
        <Text bold>KeyPackage pool </Text>
        <Text color={healthColor[s.health]}>
          {s.health} ● {s.available}/{s.demand.target} available
        </Text>
        <Text dimColor>
          {" "}
          (low {s.policy.lowWatermark}, cap {s.policy.cap})
        </Text>
      </Text>
      <Text wrap="wrap">
        target {s.demand.target}: {s.demand.why}
      </Text>
      <Text wrap="wrap">
        available {s.available} · reserved {s.reserved} · spent {s.spent} · consumed {s.consumed} · expired {s.expired}{" "}
        · created {s.created} · failed {s.failed}
      </Text>
      <Text wrap="wrap">
        expiring soon {s.expiringSoon} · last resort{" "}
        {s.lastResort ? `until ${clock(s.lastResort.notAfter, now)}` : "none"} · last upload {when(s.lastUpload)}
      </Text>
      <Text wrap="wrap">
        last pass{" "}
        {pass
          ? `${clock(pass.finishedAt, now)} ${pass.ok ? "ok" : "failed"}: generated ${pass.generated}, uploaded ${pass.uploaded}, withdrawn ${pass.withdrawn}`
          : "none yet"}
        {s.running ? " (one running now)" : ""}
      </Text>
      {s.lastError ? (
        <Text color="red" wrap="wrap">
          last error {clock(s.lastError.at, now)} {s.lastError.code}: {s.lastError.message}
        </Text>
      ) : (
        <Text dimColor>no error</Text>
      )}
      <Text bold>reserved lately</Text>
      {reservations.length === 0 && <Text dimColor>nobody reserved a key</Text>}
      {reservations.map((r) => (
        <Text key={r.ref} wrap="truncate-end">
          {fit(`${clock(r.at, now)}  ${r.by.padEnd(12)} key ${r.ref.slice(0, 12)}…  now ${r.state}`, inner)}
        </Text>
      ))}
      <Text dimColor>Esc closes</Text>
    </Box>
  )
}
