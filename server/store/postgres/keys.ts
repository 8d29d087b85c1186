/**
 * The key rules that both PostgreSQL stores apply inside their transactions: spending a reserved key (the checks are
 * ../keySpending.ts's `checkSpend`, shared with SQLite) and releasing reservations that lapsed (as ../lapses.ts does
 * for SQLite: key back to the pool, audit, the owner's `keyReleased` item, each lapse once).
 */
import type { Lapse } from "../lapses.js"
import { checkSpend, keySpentItem } from "../keySpending.js"
import type { DeviceRef, StoredSpend } from "../types.js"
import type { Queries, Tx } from "./database.js"

export async function audit(
  tx: Tx,
  now: number,
  action: string,
  owner: string,
  ref: string | null,
  actor: string | null,
  reservationId: string | null,
): Promise<void> {
  await tx.run("INSERT INTO audit (at, action, owner, ref, actor, reservation_id) VALUES ($1, $2, $3, $4, $5, $6)", [
    now,
    action,
    owner,
    ref,
    actor,
    reservationId,
  ])
}

/** A row of migrations.ts's `spend_keys`: whether it spent element `i`, and else what it found locked. */
export interface SpendRow {
  i: number
  spent: boolean
  owner: string | null
  key_state: string | null
  last_resort: boolean | null
  key_reservation: string | null
  r_ref: string | null
  r_requester: string | null
  r_expires: number | null
  r_spent: number | null
}

/** One spend: the key, its reservation, who spends it, when. */
export interface SpendCall {
  ref: string
  reservationId: string
  requester: DeviceRef
  now: number
}

/**
 * Spends the keys of `calls` in one statement (`spend_keys`); answers one row per call, in order. `items`: the
 * function writes the owners' keySpent items itself.
 */
export async function spendKeys(q: Pick<Queries, "rows">, calls: readonly SpendCall[], items: boolean) {
  const col = <T>(f: (c: SpendCall) => T) => calls.map(f)
  const rows = await q.rows<SpendRow>("SELECT * FROM spend_keys($1, $2, $3, $4, $5, $6, $7)", [
    col((c) => c.ref),
    col((c) => c.reservationId),
    col((c) => c.requester.deviceId),
    col((c) => c.requester.handle),
    col((c) => c.requester.clientId),
    col((c) => c.now),
    items,
  ])
  const byCall: SpendRow[] = []
  for (const r of rows) byCall[r.i - 1] = r
  return byCall
}

/** The spend `spend_keys` answered, or the refusal checkSpend names for what it found (it changed nothing then). */
export function spendOutcome(
  r: SpendRow,
  ref: string,
  reservationId: string,
  requester: DeviceRef,
  now: number,
): StoredSpend {
  if (!r.spent) {
    checkSpend(
      r.owner === null
        ? undefined
        : { state: r.key_state!, lastResort: r.last_resort!, reservationId: r.key_reservation },
      r.r_ref === null
        ? undefined
        : { ref: r.r_ref, requester: r.r_requester!, expiresAt: r.r_expires!, spentAt: r.r_spent },
      ref,
      reservationId,
      requester,
      now,
    )
    throw new Error(`spend_keys refused the spend of ${ref} that checkSpend allows`)
  }
  return { ref, owner: r.owner!, spentAt: now, lastResort: r.last_resort! }
}

/** Spends `ref` under `reservationId` for `requester` inside `tx`, with the owner's keySpent item; throws to refuse. */
export async function spendKey(
  tx: Tx,
  ref: string,
  reservationId: string,
  requester: DeviceRef,
  now: number,
): Promise<StoredSpend> {
  // Locked: a concurrent spend of the same key or reservation waits, then sees it spent.
  const [row] = await spendKeys(tx, [{ ref, reservationId, requester, now }], false)
  const spend = spendOutcome(row!, ref, reservationId, requester, now)
  tx.addInbox(spend.owner, keySpentItem(ref, requester, spend.lastResort), now)
  return spend
}

/** Releases the lapsed reservations of `owner`'s keys, or of everyone's. */
export async function releaseLapses(tx: Tx, now: number, owner?: string): Promise<Lapse[]> {
  const open = "expires_at <= $2 AND spent_at IS NULL AND lapsed_at IS NULL"
  const columns = "RETURNING id, ref, owner, requester, created_at"
  type Row = { id: string; ref: string; owner: string; requester: string; created_at: number }
  // The row lock of the UPDATE makes a concurrent release of the same reservation wait, then skip it: reported once.
  const rows =
    owner === undefined
      ? await tx.rows<Row>(`UPDATE reservations SET lapsed_at = $1 WHERE ${open} ${columns}`, [now, now])
      : await tx.rows<Row>(`UPDATE reservations SET lapsed_at = $1 WHERE owner = $3 AND ${open} ${columns}`, [
          now,
          now,
          owner,
        ])
  const lapses: Lapse[] = []
  for (const r of rows) {
    // A last-resort key is never marked reserved: only ordinary keys go back to the pool.
    await tx.run(
      `UPDATE keypackages SET state = 'available', reservation_id = NULL, reserved_by = NULL, reserved_until = NULL
       WHERE ref = $1 AND state = 'reserved' AND reservation_id = $2`,
      [r.ref, r.id],
    )
    const key = await tx.row<{ last_resort: boolean }>("SELECT last_resort FROM keypackages WHERE ref = $1", [r.ref])
    await audit(tx, now, "reservation_expire", r.owner, r.ref, null, r.id)
    const names = await tx.row<{ handle: string; client_id: string }>(
      "SELECT a.handle, d.client_id FROM devices d JOIN accounts a ON a.user_id = d.user_id WHERE d.id = $1",
      [r.requester],
    )
    const by = names ? { by: names.handle, byClientId: names.client_id } : { by: r.requester }
    const lastResort = key?.last_resort === true
    tx.addInbox(r.owner, { kind: "keyReleased", ref: r.ref, ...by, lastResort, reservedAt: r.created_at }, now)
    lapses.push({ owner: r.owner, ref: r.ref, requester: r.requester })
  }
  return lapses
}
