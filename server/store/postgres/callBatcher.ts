/**
 * Hands the calls made in one turn of the event loop to PostgreSQL together. Under load many requests reach the same
 * statement at once (account lookups, rate-limit takes, reserves, spends), and one statement for all of them costs
 * far less than one each: each statement is a round trip and an executor start-up, and a change a commit too, which
 * on a small machine weigh more than the rows they read or change. Calls queue until the event loop has handled the I/O at hand
 * (`setImmediate`), then run as one batch; batches do not wait for each other (the pool bounds them).
 *
 * A batch that fails fails no one by itself: each of its calls runs again alone, so that a call that cannot succeed
 * (or a conflict that touched one of them) gets its own answer and the others theirs.
 */
export class CallBatcher<In, Out> {
  private queue: { input: In; resolve: (out: Out) => void; reject: (err: unknown) => void }[] = []

  /** `runBatch` answers one output per input, in order. */
  constructor(private readonly runBatch: (inputs: In[]) => Promise<Out[]>) {}

  run(input: In): Promise<Out> {
    return new Promise<Out>((resolve, reject) => {
      if (this.queue.push({ input, resolve, reject }) === 1) setImmediate(() => void this.flush())
    })
  }

  private async flush(): Promise<void> {
    const calls = this.queue
    this.queue = []
    try {
      const outs = await this.runBatch(calls.map((c) => c.input))
      calls.forEach((c, i) => c.resolve(outs[i]!))
    } catch (err) {
      if (calls.length === 1) return calls[0]!.reject(err)
      for (const c of calls) this.runBatch([c.input]).then((outs) => c.resolve(outs[0]!), c.reject)
    }
  }
}
