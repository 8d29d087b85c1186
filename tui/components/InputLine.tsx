/** The input line: edits its own text while active and hands a finished line to `onSubmit`. */
import { Box, Text, useInput } from "ink"
import { useRef, useState } from "react"

export interface InputLineProps {
  /** Only the focused part takes keys. */
  active: boolean
  prompt: string
  onSubmit: (line: string) => void
}

export function InputLine({ active, prompt, onSubmit }: InputLineProps) {
  // Keys can arrive faster than React renders (a paste, or text and Enter in one write): the ref holds the text as
  // it is now, the state only redraws it.
  const text = useRef("")
  // Ink takes a new key handler only once React's passive effects ran: read the latest onSubmit through a ref.
  const submitTo = useRef(onSubmit)
  submitTo.current = onSubmit
  const [value, setValue] = useState("")
  const set = (v: string) => {
    text.current = v
    setValue(v)
  }
  const submit = () => {
    const line = text.current
    set("")
    submitTo.current(line)
  }
  useInput(
    (input, key) => {
      if (key.return) return submit()
      if (key.backspace || key.delete) return set(text.current.slice(0, -1))
      if (key.ctrl && input === "u") return set("")
      if (key.ctrl || key.meta || key.tab || key.escape) return
      // A paste (or text typed faster than it is read) comes as one chunk, line breaks included.
      input.split(/\r\n?|\n/).forEach((part, i) => {
        if (i > 0) submit()
        set(text.current + [...part].filter((c) => c >= " ").join(""))
      })
    },
    { isActive: active },
  )
  return (
    <Box>
      <Text color="cyan">{prompt}› </Text>
      <Text>{value}</Text>
      {active && <Text inverse> </Text>}
    </Box>
  )
}
