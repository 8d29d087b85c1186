/** Byte comparison shared by server and daemon. */

/** Whether two byte arrays hold the same bytes. Not constant-time: for public data only (keys, ids, encodings). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0
}
