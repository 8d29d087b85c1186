/**
 * Group commit for one group's posts, the PostgreSQL counterpart of ../writeBatcher.ts. Every post to a group holds
 * the group's row lock until its COMMIT is durable, so posts to one group would go one fsync at a time. Posts to a
 * group that arrive at this instance while one of its transactions runs wait, and then run together in the next
 * one. An operation (a Commit, a batch of one sender's posts) runs inside its own savepoint: one that throws rolls
 * back alone (its inbox items and rings with it) and fails alone; the others commit together, and every promise
 * settles only after that COMMIT. Posts next to each other in the queue go in one statement (`appendAll`,
 * migrations.ts's `append_entries`): a refused post changes nothing, so it needs no savepoint; any other error fails
 * the whole batch. A batch of posts alone is that one statement, committed on its own (no BEGIN and COMMIT).
 */
import { retryable, sqlState, type PgDatabase, type Tx } from "./database.js"

export type Outcome<T = unknown> = { ok: true; value: T } | { ok: false; error: unknown }

interface Pending<P> {
  /** An operation run in its own savepoint, or else… */
  op?: (tx: Tx) => Promise<unknown>
  /** …one post, run with its neighbours. */
  post?: P
  resolve: (value: unknown) => void
  reject: (error: unknown) => void
}

export class GroupBatcher<P> {
  private readonly queues = new Map<string, Pending<P>[]>()
  private readonly running = new Set<string>()

  /** `appendAll` stores posts to one group in one statement; a refusal is its post's outcome, not a throw. */
  constructor(
    private readonly db: PgDatabase,
    private readonly appendAll: (tx: Tx, groupId: string, posts: P[]) => Promise<Outcome[]>,
  ) {}

  /** Runs `op` in the next transaction of `groupId`'s posts; resolves once that transaction is committed. */
  run<T>(groupId: string, op: (tx: Tx) => Promise<T>): Promise<T> {
    return this.enqueue(groupId, { op })
  }

  /** Stores `post` in the next transaction of `groupId`'s posts; resolves once that transaction is committed. */
  post<T>(groupId: string, post: P): Promise<T> {
    return this.enqueue(groupId, { post })
  }

  private enqueue<T>(groupId: string, what: Pick<Pending<P>, "op" | "post">): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let queue = this.queues.get(groupId)
      if (!queue) this.queues.set(groupId, (queue = []))
      queue.push({ ...what, resolve: resolve as (v: unknown) => void, reject })
      if (!this.running.has(groupId)) void this.flush(groupId)
    })
  }

  private async flush(groupId: string): Promise<void> {
    this.running.add(groupId)
    try {
      for (let ops = this.take(groupId); ops.length > 0; ops = this.take(groupId)) {
        let outcomes: Outcome[]
        try {
          // Posts alone are one statement, which needs no transaction around it.
          outcomes = ops.every((p) => p.op === undefined)
            ? await this.db.autocommit((tx) =>
                this.appendAll(
                  tx,
                  groupId,
                  ops.map((p) => p.post!),
                ),
              )
            : await this.db.transaction((tx) => this.runEach(tx, groupId, ops))
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

  private take(groupId: string): Pending<P>[] {
    const ops = this.queues.get(groupId) ?? []
    this.queues.delete(groupId)
    return ops
  }

  /** Runs the posts next to each other together, and each operation in its own savepoint; a retryable failure fails
   * the whole transaction (it runs again). */
  private async runEach(tx: Tx, groupId: string, ops: Pending<P>[]): Promise<Outcome[]> {
    const outcomes: Outcome[] = []
    for (let i = 0; i < ops.length;) {
      let end = i
      while (end < ops.length && ops[end]!.op === undefined) end++
      if (end > i) {
        outcomes.push(
          ...(await this.appendAll(
            tx,
            groupId,
            ops.slice(i, end).map((p) => p.post!),
          )),
        )
        i = end
        continue
      }
      const mark = tx.mark()
      await tx.run("SAVEPOINT op")
      try {
        const value = await ops[i]!.op!(tx)
        await tx.run("RELEASE SAVEPOINT op")
        outcomes.push({ ok: true, value })
      } catch (error) {
        if (retryable.has(sqlState(error) ?? "")) throw error
        await tx.run("ROLLBACK TO SAVEPOINT op")
        tx.undoTo(mark)
        outcomes.push({ ok: false, error })
      }
      i++
    }
    return outcomes
  }
}
