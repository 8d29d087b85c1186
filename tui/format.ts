/** Small text helpers the components share: times and how many rows a message takes. */

const pad = (n: number) => String(n).padStart(2, "0")

/** Local `HH:MM` today, `Mon D HH:MM` on another day. */
export function clock(ms: number, now = Date.now()): string {
  const d = new Date(ms)
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`
  return d.toDateString() === new Date(now).toDateString()
    ? hm
    : `${d.toLocaleString("en", { month: "short" })} ${d.getDate()} ${hm}`
}

/** Rows a text of `length` characters takes at `width` columns (at least one). */
export function rowsFor(length: number, width: number): number {
  return Math.max(1, Math.ceil(length / Math.max(1, width)))
}

/** Cuts `text` to `width` characters, marking the cut with "…". */
export function fit(text: string, width: number): string {
  return text.length <= width ? text : text.slice(0, Math.max(0, width - 1)) + "…"
}
