/** The left column: every group, unread counts, the selected one highlighted. */
import { Box, Text } from "ink"
import { fit } from "../format.js"
import type { GroupView } from "../state.js"

export interface GroupListProps {
  groups: GroupView[]
  selected: string | null
  width: number
  height: number
}

export function GroupList({ groups, selected, width, height }: GroupListProps) {
  const inner = width - 4
  return (
    <Box
      flexDirection="column"
      width={width}
      flexShrink={0}
      height={height}
      borderStyle="round"
      paddingX={1}
      overflow="hidden"
    >
      <Text bold>groups</Text>
      {groups.length === 0 && <Text dimColor>none yet</Text>}
      {groups.map((g) => {
        const badge = g.unread > 0 ? ` ${g.unread}` : ""
        const mark = g.status === "active" ? "" : g.status === "removed" ? " ✗" : " !"
        const name = fit(g.name + mark, inner - badge.length)
        const on = g.groupId === selected
        return (
          <Text key={g.groupId} inverse={on} dimColor={!on && g.status !== "active"}>
            {name.padEnd(inner - badge.length)}
            <Text bold color="cyan">
              {badge}
            </Text>
          </Text>
        )
      })}
    </Box>
  )
}
