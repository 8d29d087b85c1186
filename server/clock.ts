/** Time as the server sees it. Tests hand in a ManualClock so TTLs and expiry run without sleeping. */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number
  /** Runs `fn` once, as soon as the clock reads `time` or later; the returned function cancels it. */
  at(time: number, fn: () => void): () => void
}

/** setTimeout's longest delay (~24.8 days); a longer one would fire after 1 ms. */
const maxDelay = 2 ** 31 - 1

export const systemClock: Clock = {
  now: () => Date.now(),
  at(time, fn) {
    let timer: NodeJS.Timeout
    // Re-reads the clock on waking, so a wait longer than maxDelay goes in steps.
    const wait = (): void => {
      const left = time - Date.now()
      timer = setTimeout(left > maxDelay ? wait : fn, Math.max(0, Math.min(left, maxDelay))).unref()
    }
    wait()
    return () => clearTimeout(timer)
  },
}

export class ManualClock implements Clock {
  private readonly timers = new Set<{ time: number; fn: () => void }>()

  constructor(private current = Date.now()) {}
  now(): number {
    return this.current
  }
  at(time: number, fn: () => void): () => void {
    const timer = { time, fn }
    this.timers.add(timer)
    // One that is due already runs after the caller returns, as with the system clock.
    if (time <= this.current) queueMicrotask(() => this.fire())
    return () => void this.timers.delete(timer)
  }
  advance(ms: number): void {
    this.set(this.current + ms)
  }
  /** Moves the clock; the timers that fall due run now, earliest first. */
  set(ms: number): void {
    this.current = ms
    this.fire()
  }
  private fire(): void {
    const due = [...this.timers].filter((t) => t.time <= this.current).sort((a, b) => a.time - b.time)
    for (const t of due) {
      // A timer cancelled by an earlier one in this round does not run.
      if (this.timers.delete(t)) t.fn()
    }
  }
}
