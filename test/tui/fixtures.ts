/** Daemon answers as the TUI's tests need them: shapes of rpc-schema/daemon, filled with plausible values. */
import type { DaemonStatusResult } from "../../rpc-schema/daemon/daemon.js"
import type { GroupSummary } from "../../rpc-schema/daemon/group.js"
import type { IdentityResult } from "../../rpc-schema/daemon/identity.js"
import type { KeyInfo, PoolStatusResult } from "../../rpc-schema/daemon/pool.js"
import { initialState, reducer, type Action, type State } from "../../tui/state.js"

export const t0 = new Date(2026, 11, 4, 14, 2).getTime()

export function group(name: string, members = ["alice"], id = `id-${name}`): GroupSummary {
  return { groupId: id, name, epoch: 1, members, status: "active", leaving: false, lastSeq: 0, joinedAt: t0 }
}

export function poolStatus(available = 32, over: Partial<PoolStatusResult> = {}): PoolStatusResult {
  return {
    available,
    reserved: 0,
    spent: 0,
    expired: 0,
    expiringSoon: 0,
    lastUpload: t0,
    health: available >= 8 ? "good" : available >= 3 ? "low" : available > 0 ? "critical" : "exhausted",
    lastResort: { ref: "LR".padEnd(43, "x"), notAfter: t0 + 14 * 86_400_000 },
    digest: "d",
    created: 0,
    consumed: 0,
    failed: 0,
    synced: true,
    running: false,
    lastPass: { startedAt: t0, finishedAt: t0, ok: true, generated: 32, uploaded: 32, withdrawn: 0 },
    lastError: null,
    consecutiveFailures: 0,
    nextRetryAt: null,
    policy: {
      target: 32,
      lowWatermark: 8,
      cap: 64,
      lifetimeMs: 14 * 86_400_000,
      rotateBeforeMs: 2 * 86_400_000,
      graceMs: 86_400_000,
      lastResort: true,
      maintenanceIntervalMs: 600_000,
      adaptive: true,
      suspiciousLapses: 5,
    },
    demand: {
      reservationsPerHour: 0,
      peakBurst: 0,
      peakAt: null,
      target: 32,
      reason: "minimum",
      why: "no claims measured: the configured target",
    },
    ...over,
  }
}

export function key(ref: string, over: Partial<KeyInfo> = {}): KeyInfo {
  return {
    ref: ref.padEnd(43, "r"),
    state: "available",
    cipherSuite: 1,
    lastResort: false,
    createdAt: t0,
    uploadedAt: t0,
    reservedAt: null,
    reservedBy: null,
    spentAt: null,
    consumedAt: null,
    notAfter: t0 + 14 * 86_400_000,
    hasPrivateKey: true,
    attempts: 0,
    lastError: null,
    ...over,
  }
}

const status: DaemonStatusResult = {
  version: "0.1.0",
  profile: "alice",
  pid: 1,
  username: "alice",
  userId: "0d6f2c1e-5b3a-4c7d-8e9f-a0b1c2d3e4f5",
  deviceId: "3fa2c19e07b4d851",
  clientId: "0d6f2c1e-5b3a-4c7d-8e9f-a0b1c2d3e4f5:3fa2c19e07b4d851@127.0.0.1",
  server: "http://127.0.0.1:4000",
  connection: "connected",
  registration: { state: "registered", username: "alice", attempts: 0, lastError: null, nextRetryAt: null },
  startedAt: t0,
  uptimeMs: 0,
  now: t0,
  dataDir: "/d",
  socketPath: "/s",
}
const identity: IdentityResult = {
  registered: true,
  username: "alice",
  userId: "0d6f2c1e-5b3a-4c7d-8e9f-a0b1c2d3e4f5",
  deviceId: "3fa2c19e07b4d851",
  clientId: "0d6f2c1e-5b3a-4c7d-8e9f-a0b1c2d3e4f5:3fa2c19e07b4d851@127.0.0.1",
  server: "http://127.0.0.1:4000",
  signatureKey: "k".repeat(43),
  loginKey: "l".repeat(43),
  registeredAt: t0,
}

export function linkUp(groups: GroupSummary[], over: Partial<Extract<Action, { type: "link.up" }>> = {}): Action {
  return { type: "link.up", status, identity, pool: poolStatus(), groups, lastEventId: 10, ...over }
}

/** The state after `actions`, from the initial one. */
export function run(...actions: Action[]): State {
  return actions.reduce(reducer, initialState)
}
