/** The layout: group list and message pane (or a panel), notices, input line, status bar; global keys. */
import { Box, Text, useApp, useInput } from "ink"
import { useCallback, useEffect, useReducer, useRef } from "react"
import { parseCommand } from "./commands.js"
import { GroupList } from "./components/GroupList.js"
import { InfoPanel } from "./components/InfoPanel.js"
import { InputLine } from "./components/InputLine.js"
import { maxScroll, MessagePane, messageWindow } from "./components/MessagePane.js"
import { PoolPanel } from "./components/PoolPanel.js"
import { StatusBar } from "./components/StatusBar.js"
import { execute, helpRows } from "./execute.js"
import { useDaemon } from "./hooks/useDaemon.js"
import { useTerminalSize } from "./hooks/useTerminalSize.js"
import { keyAction } from "./keymap.js"
import { initialState, reducer, selectedGroup } from "./state.js"

const listWidth = 22
/** Rows below the panes: two notice lines, the input line, the status bar. */
const chrome = 4

export function App({ socketPath }: { socketPath: string }) {
  const [state, dispatch] = useReducer(reducer, initialState)
  const { exit } = useApp()
  const { columns, rows } = useTerminalSize()
  const lastEventId = useRef(0)
  lastEventId.current = state.lastEventId
  const daemon = useDaemon(
    socketPath,
    dispatch,
    useCallback(() => lastEventId.current, []),
  )
  const group = selectedGroup(state)
  const paneHeight = Math.max(5, rows - chrome)
  const paneWidth = Math.max(20, columns - listWidth)

  // History on demand: the newest page when a group is first shown, an older page once the window reaches the top.
  const [textWidth, textRows] = [paneWidth - 4, paneHeight - 3]
  const top = group ? messageWindow(group.messages, state.scroll, textWidth, textRows).start : -1
  useEffect(() => {
    if (!group || state.link.kind !== "up") return
    if (!group.loaded) void daemon.loadHistory(group.groupId)
    else if (top === 0 && group.more && group.messages[0]?.seq)
      void daemon.loadHistory(group.groupId, group.messages[0].seq)
  }, [group, state.link.kind, top, daemon])

  const panelOpen = state.panel.kind !== "none"
  // Key handlers read the view through a ref: Ink re-subscribes a new handler only after React's passive effects
  // run, and a key can arrive before that with the previous render's closure.
  const view = useRef({ group, textWidth, textRows })
  view.current = { group, textWidth, textRows }
  useInput((input, key) => {
    const v = view.current
    const page = Math.max(1, Math.floor(v.textRows / 2))
    const max = v.group ? maxScroll(v.group.messages, v.textWidth, v.textRows) : 0
    switch (keyAction(input, key)) {
      case "nextGroup":
        return dispatch({ type: "select", delta: 1 })
      case "prevGroup":
        return dispatch({ type: "select", delta: -1 })
      case "pageUp":
        return dispatch({ type: "scroll", lines: page, max })
      case "pageDown":
        return dispatch({ type: "scroll", lines: -page, max })
      case "closePanel":
        return dispatch({ type: "panel", panel: { kind: "none" } })
    }
  })

  const submit = (line: string) =>
    void execute(parseCommand(line), {
      client: daemon.client(),
      group: view.current.group?.groupId,
      dispatch,
      quit: exit,
    })

  const p = state.panel
  return (
    <Box flexDirection="column" width={columns} height={rows}>
      <Box height={paneHeight}>
        <GroupList groups={state.groups} selected={state.selected} width={listWidth} height={paneHeight} />
        {p.kind === "pool" ? (
          <PoolPanel status={p.status} keys={p.keys} width={paneWidth} height={paneHeight} />
        ) : p.kind === "help" ? (
          <InfoPanel title="commands and keys" rows={helpRows} height={paneHeight} />
        ) : p.kind === "members" ? (
          <InfoPanel
            title={`members of ${p.group}`}
            rows={p.members.map(
              (m) =>
                [
                  m.username,
                  `${m.devices.length === 1 ? "1 device" : `${m.devices.length} devices`}: ` +
                    m.devices.map((d) => `${d.deviceId ?? "first device"}${d.self ? " (this one)" : ""}`).join(", "),
                ] as const,
            )}
            height={paneHeight}
          />
        ) : (
          <MessagePane group={group} scroll={state.scroll} width={paneWidth} height={paneHeight} />
        )}
      </Box>
      <Box flexDirection="column" height={2} justifyContent="flex-end">
        {state.notices.slice(-2).map((n) => (
          <Text key={n.id} color={n.kind === "error" ? "red" : "gray"} wrap="truncate-end">
            {n.text}
          </Text>
        ))}
      </Box>
      <InputLine active={!panelOpen} prompt={group?.name ?? ""} onSubmit={submit} />
      <StatusBar
        user={state.user}
        server={state.server}
        serverState={state.serverState}
        link={state.link}
        pool={state.pool}
      />
    </Box>
  )
}
