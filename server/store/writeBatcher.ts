/**
 * Group commit. With synchronous=FULL every COMMIT waits for an fsync, so one transaction per
 * request caps throughput near the disk's fsync rate. Writes queued while the event loop is busy
 * are run together in ONE transaction, each inside its own savepoint: an operation that throws
 * rolls back alone and fails alone; the others commit together, and every promise settles only
 * after that COMMIT is durable.
 */
import type { Db } from "./database.js"

interface Pending {
  op: () => unknown
  resolve: (value: unknown) => void
  reject: (error: unknown) => void
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown }

export class WriteBatcher {
  private queue: Pending[] = []
  private scheduled = false
  private readonly runBatch: (ops: Pending[]) => Outcome[]

  constructor(db: Db) {
    // A nested better-sqlite3 transaction is a savepoint: it rolls back alone when it throws.
    const inSavepoint = db.transaction((op: () => unknown) => op())
    const batch = db.transaction((ops: Pending[]) =>
      ops.map((p): Outcome => {
        try {
          return { ok: true, value: inSavepoint(p.op) }
        } catch (error) {
          return { ok: false, error }
        }
      }),
    )
    this.runBatch = (ops) => batch.immediate(ops)
  }

  /** Runs `op` inside the next group transaction; resolves once that transaction is committed. */
  run<T>(op: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ op, resolve: resolve as (v: unknown) => void, reject })
      if (!this.scheduled) {
        this.scheduled = true
        setImmediate(() => this.flush())
      }
    })
  }

  private flush(): void {
    this.scheduled = false
    const ops = this.queue
    this.queue = []
    let outcomes: Outcome[]
    try {
      outcomes = this.runBatch(ops)
    } catch (error) {
      // The COMMIT itself failed (disk full, I/O error): nothing of the batch was stored.
      for (const p of ops) p.reject(error)
      return
    }
    outcomes.forEach((o, i) => {
      const p = ops[i]!
      if (o.ok) p.resolve(o.value)
      else p.reject(o.error)
    })
  }
}
