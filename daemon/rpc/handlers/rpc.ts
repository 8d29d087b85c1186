import { openRpcDocument } from "../../../rpc-schema/daemon/index.js"
import type { Handlers } from "../dispatch.js"
import type { HandlerContext } from "./context.js"

export const rpcHandlers = ({ daemon, served }: HandlerContext): Pick<Handlers, "rpc.discover"> => {
  const doc = openRpcDocument(daemon.opts.version, served)
  return { "rpc.discover": () => doc }
}
