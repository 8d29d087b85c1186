/** The selected group's messages, newest at the bottom, scrolled by whole messages. */
import { Box, Text } from "ink"
import { clock, fit, rowsFor } from "../format.js"
import type { ChatMessage, GroupView } from "../state.js"

export interface MessagePaneProps {
  group: GroupView | undefined
  /** Messages hidden below the window (0: the newest is shown). */
  scroll: number
  width: number
  height: number
  now?: number
}

const mark: Record<ChatMessage["state"], string> = { sent: "", queued: " [queued]", refused: " [refused]" }

function header(m: ChatMessage, now: number): string {
  return `${clock(m.at, now)} ${m.own ? "▸ " : ""}${m.sender}: `
}

const rowsOf = (m: ChatMessage, width: number, now: number) =>
  rowsFor(header(m, now).length + m.text.length + mark[m.state].length + (m.error?.length ?? 0) + 2, width)

/**
 * Which messages fit: the window [start, end) of `messages` that ends `scroll` messages above the newest; at the top
 * it fills the pane downwards instead of leaving it half empty.
 */
export function messageWindow(messages: ChatMessage[], scroll: number, width: number, rows: number, now = Date.now()) {
  let end = Math.max(0, messages.length - scroll)
  let start = end
  let used = 0
  while (start > 0) {
    const r = rowsOf(messages[start - 1]!, width, now)
    if (used + r > rows && start < end) break
    used += r
    start--
  }
  while (start === 0 && end < messages.length && used + rowsOf(messages[end]!, width, now) <= rows) {
    used += rowsOf(messages[end]!, width, now)
    end++
  }
  return { start, end }
}

/** The furthest scroll that still changes the window: the oldest message at the top of a full pane. */
export function maxScroll(messages: ChatMessage[], width: number, rows: number, now = Date.now()): number {
  return messages.length - messageWindow(messages, messages.length, width, rows, now).end
}

export function MessagePane({ group, scroll, width, height, now = Date.now() }: MessagePaneProps) {
  const inner = width - 4
  const rows = height - 3
  if (!group) {
    return (
      <Box flexDirection="column" flexGrow={1} height={height} borderStyle="round" paddingX={1}>
        <Text dimColor>No group selected. /create NAME starts one; invitations appear here by themselves.</Text>
      </Box>
    )
  }
  const { start, end } = messageWindow(group.messages, scroll, inner, rows, now)
  const above = start > 0 || group.more
  const below = group.messages.length - end
  const hint = [above ? "↑ PgUp" : "", below > 0 ? `↓ ${below} newer` : ""].filter(Boolean).join(" ")
  const title = `${group.name} (${group.members.join(", ")})`
  return (
    <Box flexDirection="column" flexGrow={1} height={height} borderStyle="round" paddingX={1}>
      <Box justifyContent="space-between">
        <Text bold wrap="truncate-end">
          {fit(title, inner - hint.length - 1)}
        </Text>
        <Text dimColor>{hint}</Text>
      </Box>
      <Box flexDirection="column" height={rows} justifyContent="flex-end" overflow="hidden">
        {group.messages.length === 0 && <Text dimColor>no messages yet</Text>}
        {group.messages.slice(start, end).map((m) => (
          <Text key={m.key} wrap="wrap">
            <Text dimColor>{clock(m.at, now)} </Text>
            <Text color={m.own ? "cyan" : "magenta"} bold>
              {m.own ? "▸ " : ""}
              {m.sender}:
            </Text>{" "}
            <Text dimColor={m.state !== "sent"}>{m.text}</Text>
            {m.state !== "sent" && (
              <Text color={m.state === "queued" ? "yellow" : "red"}>
                {mark[m.state]}
                {m.error ? ` ${m.error}` : ""}
              </Text>
            )}
          </Text>
        ))}
      </Box>
    </Box>
  )
}
