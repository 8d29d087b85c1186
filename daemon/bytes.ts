/** Byte comparisons shared by the daemon's modules. */

/** Whether two byte arrays hold the same bytes (not constant-time: for public data only). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i])
}
