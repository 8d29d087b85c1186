// Byte helpers shared by the node:crypto primitives.

/**
 * node:crypto returns Buffers; ts-mls and its callers expect plain Uint8Arrays (Buffer's `slice` is a view and
 * `deepStrictEqual` tells the two apart). Wraps the Buffer's memory when it owns it, copies it when it is a slice of
 * Node's shared pool.
 */
export function toBytes(b: Uint8Array): Uint8Array {
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.buffer instanceof ArrayBuffer)
    return new Uint8Array(b.buffer)
  return new Uint8Array(b)
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let length = 0
  for (const p of parts) length += p.length
  const out = new Uint8Array(length)
  let offset = 0
  for (const p of parts) {
    out.set(p, offset)
    offset += p.length
  }
  return out
}

/** RFC 9180 I2OSP(n, 2). */
export function uint16(n: number): Uint8Array {
  return new Uint8Array([(n >> 8) & 0xff, n & 0xff])
}

const encoder = new TextEncoder()

export function utf8(s: string): Uint8Array {
  return encoder.encode(s)
}

export function startsWith(b: Uint8Array, prefix: Uint8Array): boolean {
  if (b.length < prefix.length) return false
  for (let i = 0; i < prefix.length; i++) if (b[i] !== prefix[i]) return false
  return true
}
