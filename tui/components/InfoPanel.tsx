/** A titled list in place of the message pane: `/help` and `/members`. */
import { Box, Text } from "ink"

export interface InfoPanelProps {
  title: string
  rows: readonly (readonly [string, string])[]
  height: number
}

export function InfoPanel({ title, rows, height }: InfoPanelProps) {
  const left = Math.max(0, ...rows.map(([l]) => l.length)) + 2
  return (
    <Box flexDirection="column" flexGrow={1} height={height} borderStyle="round" paddingX={1} overflow="hidden">
      <Text bold>{title}</Text>
      {rows.map(([l, r]) => (
        <Text key={l} wrap="truncate-end">
          <Text color="cyan">{l.padEnd(left)}</Text>
          {r}
        </Text>
      ))}
      <Text dimColor>Esc closes</Text>
    </Box>
  )
}
