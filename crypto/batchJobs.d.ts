// Types of batchJobs.js (plain JavaScript so that its worker thread needs no TypeScript loader).
export declare const kinds: { readonly ed25519Verify: 1; readonly x25519Ephemeral: 2 }
export declare const status: { readonly pending: 0; readonly ok: 1; readonly failed: 2 }
export declare const workerTag: string
export declare const dhOutputSize: number
export declare function views(sab: SharedArrayBuffer): {
  header: Int32Array
  count: number
  status: Int32Array
  offsets: Int32Array
  data: Uint8Array
  output: Uint8Array
}
export declare function allocate(kind: number, count: number, dataSize: number): SharedArrayBuffer
export declare function runItems(sab: SharedArrayBuffer): number
export declare function finishPending(sab: SharedArrayBuffer): void
export declare const spareHeaderInts: number
export declare const spareSlotSize: number
