/**
 * Group commit for one group's posts, the PostgreSQL counterpart of ../writeBatcher.ts. Every post to a group holds
 * the group's row lock until its COMMIT is durable, so posts to one group would go one fsync at a time. Posts to a
 * group that arrive at this instance while one of its transactions runs wait, and then run together in the next
 * one, each inside its own savepoint: an operation that throws rolls back alone (its inbox items and rings with it)
 * and fails alone; the others commit together, and every promise settles only after that COMMIT. An operation that
 * is one statement refusing without a change (a post: `append_entry`) needs no savepoint: its refusal is an AppError
 * thrown after the statement; any other error fails the whole batch.
 */
import { AppError } from "../../../rpc-schema/errors.js"
import { retryable, sqlState, type PgDatabase, type Tx } from "./database.js"

interface Pending {
  op: (tx: Tx) => Promise<unknown>
  /** One statement that changes nothing when it refuses: run without a savepoint. */
  atomic: boolean
  resolve: (value: unknown) => void
  reject: (error: unknown) => void
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown }

export class GroupBatcher {
  private readonly queues = new Map<string, Pending[]>()
  private readonly running = new Set<string>()

  constructor(private readonly db: PgDatabase) {}

  /**
   * Runs `op` in the next transaction of `groupId`'s posts; resolves once that transaction is committed. `atomic`: op
   * makes one change in one statement, and refuses with an AppError having changed nothing.
   */
  run<T>(groupId: string, op: (tx: Tx) => Promise<T>, atomic = false): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let queue = this.queues.get(groupId)
      if (!queue) this.queues.set(groupId, (queue = []))
      queue.push({ op, atomic, resolve: resolve as (v: unknown) => void, reject })
      if (!this.running.has(groupId)) void this.flush(groupId)
    })
  }

  private async flush(groupId: string): Promise<void> {
    this.running.add(groupId)
    try {
      for (let ops = this.take(groupId); ops.length > 0; ops = this.take(groupId)) {
        let outcomes: Outcome[]
        try {
          outcomes = await this.db.transaction((tx) => runEach(tx, ops))
        } catch (error) {
          // The transaction itself failed (COMMIT, the connection): nothing of the batch was stored.
          for (const p of ops) p.reject(error)
          continue
        }
        outcomes.forEach((o, i) => (o.ok ? ops[i]!.resolve(o.value) : ops[i]!.reject(o.error)))
      }
    } finally {
      this.running.delete(groupId)
    }
  }

  private take(groupId: string): Pending[] {
    const ops = this.queues.get(groupId) ?? []
    this.queues.delete(groupId)
    return ops
  }
}

/** Runs each operation in its own savepoint; a retryable failure fails the whole transaction (it runs again). */
async function runEach(tx: Tx, ops: Pending[]): Promise<Outcome[]> {
  const outcomes: Outcome[] = []
  for (const p of ops) {
    if (p.atomic) {
      try {
        outcomes.push({ ok: true, value: await p.op(tx) })
      } catch (error) {
        if (!(error instanceof AppError)) throw error
        outcomes.push({ ok: false, error })
      }
      continue
    }
    const mark = tx.mark()
    await tx.run("SAVEPOINT op")
    try {
      const value = await p.op(tx)
      await tx.run("RELEASE SAVEPOINT op")
      outcomes.push({ ok: true, value })
    } catch (error) {
      if (retryable.has(sqlState(error) ?? "")) throw error
      await tx.run("ROLLBACK TO SAVEPOINT op")
      tx.undoTo(mark)
      outcomes.push({ ok: false, error })
    }
  }
  return outcomes
}
