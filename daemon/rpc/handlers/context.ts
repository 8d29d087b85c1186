/** What the handlers reach: the daemon core, the methods served, the test clock when enabled. */
import type { MethodDescriptor } from "../../../rpc-schema/daemon/index.js"
import type { SettableClock } from "../../clock.js"
import type { Daemon } from "../../daemon.js"

export interface HandlerContext {
  daemon: Daemon
  served: readonly MethodDescriptor[]
  /** Only under MLSD_TEST_CLOCK=1. */
  testClock: SettableClock | undefined
}
