// Whether ts-mls carries patches/ts-mls+1.6.4+001+fixes.patch and 002+speed.patch. Without the fixes the server
// takes non-canonical KeyPackage encodings and a Commit with several invalid proposals ends the daemon; without the
// speed patch ts-mls would misread the lazily expanded secret trees of the group states the daemon stores (their
// pending tree secrets taken for empty ratchets). Both processes refuse to start then (their main.ts).
import { decodeVarLenData } from "ts-mls/codec/variableLength.js"
import { decodeCommit } from "ts-mls/commit.js"
import * as secretTree from "ts-mls/secretTree.js"

/** Whether `decode` takes `bytes` (stock ts-mls does; the fixes refuse them by returning undefined or throwing). */
function accepts(decode: (b: Uint8Array, offset: number) => unknown, bytes: number[]): boolean {
  try {
    return decode(Uint8Array.from(bytes), 0) !== undefined
  } catch {
    return false
  }
}

/**
 * A one-line reason to refuse to start when ts-mls decodes encodings RFC 9420 forbids (so the fixes patch is missing),
 * or undefined when it does not.
 */
export function tsMlsPatchProblem(): string | undefined {
  // A Commit whose optional path has presence octet 2 (§2.1.1), and an empty vector with a 2-byte length (§2.1.2).
  const taken = accepts(decodeCommit, [0, 2]) || accepts(decodeVarLenData, [0x40, 0])
  if (taken)
    return "ts-mls is not patched (it decodes non-canonical encodings): run npm ci so that patches/ applies, see patches/README.md"
  // A namespace lookup, not a named import: a missing export must give this line, not a link error.
  if (!("expandedLeaf" in secretTree))
    return "ts-mls lacks its speed patch (stored group states need its lazy secret tree): run npm ci so that patches/ applies, see patches/README.md"
  return undefined
}
