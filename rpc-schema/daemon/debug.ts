/**
 * `debug.*`: TEST ONLY. Served only when the daemon runs with MLSD_TEST_CLOCK=1, so that tests can move the
 * daemon's clock together with a test server's ManualClock. Never listed by `rpc.discover` otherwise.
 */
import { Type, type Static } from "@sinclair/typebox"
import { described, Strict, TimestampMs } from "../common.js"
import { method } from "./method.js"

export const ClockResult = Type.Object({ now: TimestampMs })
export type ClockResult = Static<typeof ClockResult>

export const DebugSetClockParams = Strict({ now: TimestampMs })
export type DebugSetClockParams = Static<typeof DebugSetClockParams>

export const setClock = method({
  name: "debug.setClock",
  summary: "test only: set the daemon's clock",
  description: "Sets the daemon's clock to `now`; it keeps ticking from there.",
  params: DebugSetClockParams,
  result: ClockResult,
  errors: [],
  testOnly: true,
})

export const DebugAdvanceClockParams = Strict({ ms: described(Type.Integer(), "milliseconds to move the clock by") })
export type DebugAdvanceClockParams = Static<typeof DebugAdvanceClockParams>

export const advanceClock = method({
  name: "debug.advanceClock",
  summary: "test only: move the daemon's clock",
  description: "Moves the daemon's clock by `ms`.",
  params: DebugAdvanceClockParams,
  result: ClockResult,
  errors: [],
  testOnly: true,
})
