/** The terminal's size, following resizes (80x24 when the output is not a terminal, as in component tests). */
import { useStdout } from "ink"
import { useEffect, useState } from "react"

export function useTerminalSize(): { columns: number; rows: number } {
  const { stdout } = useStdout()
  const read = () => ({ columns: stdout.columns || 80, rows: stdout.rows || 24 })
  const [size, setSize] = useState(read)
  useEffect(() => {
    const onResize = () => setSize(read())
    stdout.on("resize", onResize)
    return () => void stdout.off("resize", onResize)
  })
  return size
}
