// Types of _curve25519Loop.js (plain JavaScript so that its worker threads need no TypeScript loader).
export declare const workerTag: string
export declare function loop(kind: "verify" | "encap", ms: number): number
