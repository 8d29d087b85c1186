/** TEST ONLY (MLSD_TEST_CLOCK=1): move the daemon's clock. Not registered otherwise. */
import type { Handlers } from "../dispatch.js"
import type { HandlerContext } from "./context.js"

export const debugHandlers = ({
  testClock,
}: HandlerContext): Partial<Pick<Handlers, "debug.setClock" | "debug.advanceClock">> =>
  testClock
    ? {
        "debug.setClock": (p) => {
          testClock.set(p.now)
          return { now: testClock.now() }
        },
        "debug.advanceClock": (p) => {
          testClock.advance(p.ms)
          return { now: testClock.now() }
        },
      }
    : {}
