/**
 * A titled list in place of the message pane: `/help` and `/members`. Rows that do not fit the pane's height are
 * counted in the last line rather than drawn past the border (a group of 1,000 members lists what fits).
 */
import { Box, Text } from "ink"

export interface InfoPanelProps {
  title: string
  rows: readonly (readonly [string, string])[]
  height: number
}

export function InfoPanel({ title, rows, height }: InfoPanelProps) {
  const left = Math.max(0, ...rows.map(([l]) => l.length)) + 2
  // Inside the border: the title, the rows, the footer.
  const room = Math.max(1, height - 4)
  const shown = rows.length > room ? rows.slice(0, room - 1) : rows
  const hidden = rows.length - shown.length
  return (
    <Box flexDirection="column" flexGrow={1} height={height} borderStyle="round" paddingX={1} overflow="hidden">
      <Text bold>{title}</Text>
      {shown.map(([l, r]) => (
        <Text key={l} wrap="truncate-end">
          <Text color="cyan">{l.padEnd(left)}</Text>
          {r}
        </Text>
      ))}
      {hidden > 0 && <Text dimColor>… {hidden} more (a taller terminal shows them)</Text>}
      <Text dimColor>Esc closes</Text>
    </Box>
  )
}
