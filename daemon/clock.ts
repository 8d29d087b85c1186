/** Time as the daemon sees it. Under MLSD_TEST_CLOCK=1 it can be set or moved (debug.* methods); it keeps ticking. */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number
}

export class SettableClock implements Clock {
  private offset = 0
  now(): number {
    return Date.now() + this.offset
  }
  set(ms: number): void {
    this.offset = ms - Date.now()
  }
  advance(ms: number): void {
    this.offset += ms
  }
}
