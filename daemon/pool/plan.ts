/**
 * The pool policy as a pure function: given the keys the daemon holds, what the server holds (when it was asked)
 * and the time, the actions that bring both to the policy's shape. The runner executes them and plans again until
 * nothing is left to do, so each rule only has to be right for the state it sees.
 */
import type { KeyState } from "../../rpc-schema/daemon/pool.js"
import type { LocalKey } from "../store/poolStore.js"
import type { MaintenancePolicy } from "./policy.js"

/** The refs the server holds for us (from GET refs and status), when the digests disagreed. */
export interface ServerView {
  available: Set<string>
  reserved: Set<string>
  lastResortRef: string | null
}

export interface PoolState {
  keys: readonly LocalKey[]
  /** Absent when the server's digest matched ours: the local belief stands. */
  server?: ServerView
}

export type Action =
  /** Past not_after plus the grace period: delete the row and the private part. */
  | { kind: "purge"; refs: string[] }
  /** Correct a key's local state. */
  | { kind: "mark"; ref: string; state: KeyState; why: string }
  /** Take a key off the server: one we hold no private part for, or one due for rotation. */
  | { kind: "withdraw"; ref: string; why: "unknown" | "rotate" }
  | { kind: "generate"; count: number }
  /** Upload persisted keys not yet accepted. */
  | { kind: "upload"; refs: string[] }
  | { kind: "generateLastResort" }
  | { kind: "uploadLastResort"; ref: string }

const live: readonly KeyState[] = ["created", "available", "reserved"]

export function plan(state: PoolState, now: number, policy: MaintenancePolicy): Action[] {
  const actions: Action[] = []
  // A key a pending invitation needs stays, past its grace too, until group.accept or group.decline consumes it.
  const purge = state.keys.filter((k) => k.notAfter + policy.graceMs <= now && !k.heldByInvitation).map((k) => k.ref)
  if (purge.length > 0) actions.push({ kind: "purge", refs: purge })
  const keys = state.keys.filter((k) => k.notAfter + policy.graceMs > now || k.heldByInvitation)

  // The state each key will have after this round's corrections, for the counts below.
  const after = new Map(keys.map((k) => [k.ref, k.state]))
  const mark = (k: LocalKey, to: KeyState, why: string) => {
    if (after.get(k.ref) === to) return
    after.set(k.ref, to)
    actions.push({ kind: "mark", ref: k.ref, state: to, why })
  }
  const withdrawing = new Set<string>()
  const withdraw = (ref: string, why: "unknown" | "rotate") => {
    withdrawing.add(ref)
    actions.push({ kind: "withdraw", ref, why })
  }

  const s = state.server
  if (s) {
    const byRef = new Map(keys.map((k) => [k.ref, k]))
    for (const ref of [...s.available, ...s.reserved]) {
      const k = byRef.get(ref)
      // A key on the server we cannot open a Welcome for (or have retired) must not be handed out.
      if (!k || !k.hasSecret || k.lastResort || !["created", "available", "reserved", "spent"].includes(k.state)) {
        withdraw(ref, "unknown")
      } else mark(k, s.reserved.has(ref) ? "reserved" : "available", "as on the server")
    }
    for (const k of keys) {
      if (k.lastResort || !["available", "reserved"].includes(k.state)) continue
      if (s.available.has(k.ref) || s.reserved.has(k.ref)) continue
      // Gone from the server: spent (someone may add us with it) unless simply expired.
      mark(k, k.notAfter > now ? "spent" : "expired", "absent from the server")
    }
    for (const k of keys) {
      if (!k.lastResort) continue
      if (k.ref === s.lastResortRef && k.hasSecret && k.state !== "available") mark(k, "available", "as on the server")
      if (k.ref !== s.lastResortRef && k.state === "available") mark(k, "expired", "replaced on the server")
    }
  }

  for (const k of keys) {
    const st = after.get(k.ref)!
    if (!live.includes(st)) continue
    if (k.notAfter <= now) mark(k, "expired", "past not_after")
    // Never uploaded in time: uploading it now would only have it rotated out at once.
    else if (st === "created" && !k.lastResort && k.notAfter - now <= policy.rotateBeforeMs)
      mark(k, "expired", "not uploaded in time")
    else if (st === "available" && !k.lastResort && k.notAfter - now <= policy.rotateBeforeMs) {
      if (!withdrawing.has(k.ref)) withdraw(k.ref, "rotate")
    }
  }

  const ordinary = keys.filter((k) => !k.lastResort && !withdrawing.has(k.ref))
  const count = (...states: KeyState[]) => ordinary.filter((k) => states.includes(after.get(k.ref)!)).length
  const usable = count("available", "created")
  // Keys being withdrawn are still counted as held: if a withdrawal fails the cap must still hold.
  const held = count("available", "created", "reserved") + withdrawing.size
  const missing = Math.min(policy.target - usable, policy.cap - held)
  if (missing > 0) actions.push({ kind: "generate", count: missing })

  const due = ordinary.filter((k) => after.get(k.ref) === "created" && k.nextAttemptAt <= now).map((k) => k.ref)
  if (due.length > 0) actions.push({ kind: "upload", refs: due })

  if (policy.lastResort) {
    const current = keys.filter(
      (k) =>
        k.lastResort &&
        k.hasSecret &&
        ["created", "available"].includes(after.get(k.ref)!) &&
        k.notAfter - now > policy.rotateBeforeMs,
    )
    const onServer = current.find((k) => after.get(k.ref) === "available")
    const pending = current.find((k) => after.get(k.ref) === "created")
    if (!onServer && pending) {
      if (pending.nextAttemptAt <= now) actions.push({ kind: "uploadLastResort", ref: pending.ref })
    } else if (!onServer) actions.push({ kind: "generateLastResort" })
  }
  return actions
}
