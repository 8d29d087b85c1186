/**
 * mlsctl's friendly commands: hand-picked, each naming the daemon method it calls. Positional arguments and
 * `--flags` are params of that method, so their types and help texts come from its descriptor in rpc-schema/daemon;
 * `call` and `methods` reach every method, including ones added after this table was written.
 */
import type { DaemonClient } from "../../daemon-client/index.js"
import { methods, notifications, type MethodName, type MethodResult } from "../../rpc-schema/daemon/index.js"
import { bold, columns, dim, duration, localTime, poolLine, poolStatus, short, table } from "./output.js"

/** A usage error: exit status 2. */
export class UsageError extends Error {}
/** The daemon cannot be reached, did not answer in time, or went away: exit status 3. */
export class Unreachable extends Error {}

/** What a command runs with. */
export interface Context {
  json: boolean
  /** Calls a method on the daemon (connecting on first use), bounded by --timeout. */
  call(method: string, params: Record<string, unknown>): Promise<unknown>
  /** The connected client, for watch. */
  client(): Promise<DaemonClient>
  /** Writes one line to stdout. */
  out(line: string): void
  /** Prints a result: the JSON value on one line with --json, else `human(result)` (nothing when it is ""). */
  show<T>(result: T, human: (r: T) => string): void
  /** Lines of stdin. */
  stdinLines(): AsyncIterable<string>
  /** All of stdin. */
  stdinText(): Promise<string>
  stdinIsTTY: boolean
  /** Closes the connection, if one was made. */
  close(): void
}

export interface Command {
  /** What the user types: `pool list`. */
  name: string
  /** The method it calls; its params are the arguments, its summary the help line. */
  method?: MethodName
  /** Positional params of the method, in order; the last one takes the remaining words when `rest` is set. */
  args?: readonly string[]
  /** Optional params of the method offered as `--name VALUE`. */
  flags?: readonly string[]
  /** Positional words that are not params: `[TEXT…]`, `USER…`. */
  rest?: string
  /** The help line when it is not the method's summary. */
  summary?: string
  /** More help text. */
  about?: string
  run(ctx: Context, params: Record<string, unknown>, rest: string[]): Promise<void>
}

type R<M extends MethodName> = MethodResult<M>

/** Calls `method` with the params as given and prints its result. */
const simple =
  <M extends MethodName>(method: M, human: (r: R<M>, params: Record<string, unknown>) => string) =>
  async (ctx: Context, params: Record<string, unknown>) => {
    const r = (await ctx.call(method, params)) as R<M>
    ctx.show(r, (x) => human(x, params))
  }

const groupLine = (g: R<"group.create">) =>
  `${g.name} (epoch ${g.epoch}, members ${g.members.join(", ")}${g.status === "active" ? "" : `, ${g.status}`})`

const sendLine = (m: R<"message.send">) =>
  m.state === "sent" ? `sent #${m.seq}` : `queued: ${m.error ?? "the server cannot be reached"}; it is posted later`

/** A notification in one human line: the common ones spelled out, any other as `name key=value…`. */
export function eventLine(method: string, params: unknown): string {
  const p = params as Record<string, unknown>
  const at = typeof p.sentAt === "number" ? p.sentAt : Date.now()
  const text = (() => {
    switch (method) {
      case "message.received":
        return `[${p.group}] ${bold(String(p.sender))}: ${p.text}`
      case "message.refused":
        return `[${p.group}] not sent (${p.code}: ${p.message}): ${p.text}`
      case "group.joined":
        return `joined ${p.name}, invited by ${p.by} (members ${(p.members as string[]).join(", ")})`
      case "group.updated":
        return `${p.name}: epoch ${p.epoch} by ${p.by} (${p.reason}), members ${(p.members as string[]).join(", ")}`
      case "device.added":
        return p.own
          ? `this account has a new device ${p.deviceId}`
          : `${p.username} has a new device ${p.deviceId}: check with them that it is theirs`
      case "credential.refused":
        return `refused a device of ${p.username ?? "an unknown account"} (${p.clientId}): ${p.reason}`
      case "connection.changed":
        return `connection ${p.state}${p.server ? ` to ${p.server}` : ""}${p.error ? ` (${p.error})` : ""}`
      case "pool.changed":
        return `pool ${p.reason}: ${poolLine(p.status as R<"pool.status">)}`
      default:
        return `${method} ${Object.entries(p)
          .filter(([k, v]) => k !== "eventId" && (typeof v !== "object" || v === null))
          .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
          .join(" ")}`
    }
  })()
  return `${dim(localTime(at))}  ${text}`
}

export const commands: readonly Command[] = [
  {
    name: "status",
    method: "daemon.status",
    summary: "the daemon, its connection and pool health in one glance",
    about: "With --json: the daemon.status result (the pool is `mlsctl --json pool`).",
    async run(ctx) {
      const st = (await ctx.call("daemon.status", {})) as R<"daemon.status">
      if (ctx.json) return ctx.show(st, () => "")
      const pool = st.username ? ((await ctx.call("pool.status", {})) as R<"pool.status">) : undefined
      ctx.out(
        columns([
          ["profile", `${st.profile} (mlsd ${st.version}, pid ${st.pid}, up ${duration(st.uptimeMs)})`],
          [
            "user",
            st.username ?? "not registered: mlsctl register USER --server URL (or mlsctl link CODE --server URL)",
          ],
          ...(st.deviceId ? [["device", st.deviceId] as [string, string]] : []),
          ["server", st.server ? `${st.server} (${st.connection})` : st.connection],
          ["pool", pool ? poolLine(pool) : "none before registration"],
          ["socket", st.socketPath],
          ["data", st.dataDir],
        ]),
      )
    },
  },
  {
    name: "register",
    method: "identity.register",
    args: ["username"],
    flags: ["server"],
    run: simple("identity.register", (r) => `registered ${r.username} on ${r.server}, device ${r.deviceId}`),
  },
  {
    name: "whoami",
    method: "identity.get",
    run: simple("identity.get", (r) =>
      r.registered
        ? columns([
            ["user", r.username ?? ""],
            ["user id", r.userId ?? "not known yet"],
            ["device", r.deviceId ?? "not known yet"],
            ["client id", r.clientId ?? ""],
            ["server", r.server ?? ""],
            ["mls key", r.signatureKey ?? ""],
            ["login key", r.loginKey ?? ""],
            ["since", r.registeredAt === null ? "" : localTime(r.registeredAt)],
          ])
        : "not registered",
    ),
  },
  { name: "pool", method: "pool.status", summary: "pool health and figures (= pool status)", run: poolRun },
  { name: "pool status", method: "pool.status", run: poolRun },
  {
    name: "pool list",
    method: "pool.list",
    flags: ["state", "limit"],
    run: simple("pool.list", (r) =>
      table(
        ["REF", "STATE", "SUITE", "CREATED", "NOT AFTER", "NOTE"],
        r.keys.map((k) => [
          short(k.ref),
          k.state,
          String(k.cipherSuite),
          localTime(k.createdAt),
          localTime(k.notAfter),
          [k.lastResort && "last resort", k.reservedBy && `reserved by ${k.reservedBy}`, k.lastError]
            .filter(Boolean)
            .join("; "),
        ]),
        "no keys",
      ),
    ),
  },
  { name: "pool refresh", method: "pool.refresh", run: simple("pool.refresh", poolStatus) },
  {
    name: "groups",
    method: "group.list",
    run: simple("group.list", (r) =>
      table(
        ["NAME", "MEMBERS", "EPOCH", "STATUS", "ID"],
        r.groups.map((g) => [g.name, g.members.join(","), String(g.epoch), g.status, g.groupId]),
        "no groups",
      ),
    ),
  },
  {
    name: "create",
    method: "group.create",
    args: ["name"],
    about: "Prints the new group's id on its own line.",
    run: simple("group.create", (g) => g.groupId),
  },
  {
    name: "invite",
    method: "group.invite",
    args: ["group"],
    rest: "USER…",
    about: "Invites each USER in turn (one group.invite each) and stops at the first failure, saying which.",
    async run(ctx, params, users) {
      if (users.length === 0) throw new UsageError("invite needs at least one USER")
      for (const [i, user] of users.entries()) {
        try {
          const g = (await ctx.call("group.invite", { ...params, user })) as R<"group.invite">
          ctx.show(g, (x) => `invited ${user} to ${groupLine(x)}`)
        } catch (err) {
          const done = users.slice(0, i)
          const note = `stopped at ${user}${done.length ? ` (invited: ${done.join(", ")})` : ""}`
          if (err instanceof Error) err.message += `; ${note}`
          throw err
        }
      }
    },
  },
  {
    name: "members",
    method: "group.members",
    args: ["group"],
    run: simple("group.members", (r) =>
      [
        `${r.name}: epoch ${r.epoch}, ${r.status}`,
        table(
          ["USER", "DEVICE", "LEAF", "KEY", ""],
          r.members.flatMap((m) =>
            m.devices.map((d, i) => [
              i === 0 ? m.username : "",
              d.deviceId ?? d.clientId,
              String(d.leafIndex),
              d.signatureKey,
              d.self ? "(this device)" : m.self ? "(yours)" : "",
            ]),
          ),
          "no members",
        ),
      ].join("\n"),
    ),
  },
  {
    name: "remove",
    method: "group.remove",
    args: ["group", "user"],
    run: simple("group.remove", (g, p) => `removed ${p.user} from ${groupLine(g)}`),
  },
  {
    name: "leave",
    method: "group.leave",
    args: ["group"],
    run: simple("group.leave", (g) => `asked to leave ${groupLine(g)}; another member commits it`),
  },
  {
    name: "rejoin",
    method: "group.rejoin",
    args: ["group"],
    run: simple("group.rejoin", (g) => `rejoined ${groupLine(g)}; messages sent while out of sync are missing`),
  },
  {
    name: "rotate",
    method: "group.selfUpdate",
    args: ["group"],
    run: simple("group.selfUpdate", (r) => `new keys in ${r.groupId}: epoch ${r.epoch}`),
  },
  {
    name: "send",
    method: "message.send",
    args: ["group"],
    rest: "[TEXT…]",
    about:
      "The words of TEXT make one message. With no TEXT, each line of stdin is one message (blank lines are skipped);\n" +
      "sending stops at the first failure.",
    async run(ctx, params, words) {
      const send = async (text: string) => {
        const m = (await ctx.call("message.send", { ...params, text })) as R<"message.send">
        ctx.show(m, sendLine)
      }
      if (words.length > 0) return send(words.join(" "))
      for await (const line of ctx.stdinLines()) if (line.trim() !== "") await send(line)
    },
  },
  {
    name: "history",
    method: "message.list",
    args: ["group"],
    flags: ["limit", "before"],
    run: simple("message.list", (r) =>
      [
        ...(r.more ? [dim(`(older messages: --before ${r.messages[0]?.seq})`)] : []),
        ...r.messages.map((m) => `${dim(localTime(m.sentAt))}  ${bold(m.sender)}: ${m.text}`),
        ...r.queued.map((q) => `${dim(localTime(q.createdAt))}  ${dim("(queued)")}: ${q.text}`),
      ].join("\n"),
    ),
  },
  {
    name: "link-code",
    method: "identity.linkCode",
    about:
      "Prints a one-time code (10 minutes) that makes another daemon a device of this account: run\n" +
      "`mlsctl link CODE --server URL` there (or start it with `mlsd --link CODE`). The new device makes its own keys;\n" +
      "this daemon adds it to its groups once it shows up.",
    run: simple("identity.linkCode", (r) => `${r.code}\n${dim(`valid until ${localTime(r.expiresAt)}`)}`),
  },
  {
    name: "link",
    method: "identity.link",
    args: ["code"],
    flags: ["server"],
    about: "On a fresh profile: become a new device of the account CODE was made for (`mlsctl link-code` there).",
    run: simple("identity.link", (r) => `linked as a device ${r.deviceId} of ${r.username} on ${r.server}`),
  },
  {
    name: "devices",
    method: "identity.devices",
    run: simple("identity.devices", (r) =>
      [
        `${r.username} (${r.userId})`,
        table(
          ["DEVICE", "ADDED", "STATUS", "MLS KEY", ""],
          r.devices.map((d) => [
            d.deviceId,
            localTime(d.createdAt),
            d.removedAt === null ? "active" : `removed ${localTime(d.removedAt)}`,
            d.signatureKey ?? "none yet",
            d.self ? "(this device)" : "",
          ]),
          "no devices",
        ),
      ].join("\n"),
    ),
  },
  {
    name: "remove-device",
    method: "identity.removeDevice",
    args: ["deviceId"],
    about: "A lost laptop: it can no longer log in, and this daemon takes its leaves out of its groups.",
    run: simple("identity.removeDevice", (r) => `removed device ${r.deviceId}`),
  },
  {
    name: "watch",
    method: "events.subscribe",
    flags: ["events", "after"],
    summary: "print notifications, one line each, until killed",
    about:
      'With --json, one JSON object per line: {"method": …, "params": …}. Once subscribed it says so on stderr.\n' +
      "Exits 3 when the daemon goes away, so a supervisor can restart it.",
    async run(ctx, params) {
      const client = await ctx.client()
      // Listening before subscribing: replayed events follow the answer at once.
      client.onAny((method, p) => ctx.out(ctx.json ? JSON.stringify({ method, params: p }) : eventLine(method, p)))
      const sub = (await ctx.call("events.subscribe", params)) as R<"events.subscribe">
      process.stderr.write(
        `mlsctl: watching ${sub.events.join(", ")} (last event ${sub.lastEventId}, ${sub.replayed} replayed)\n`,
      )
      const reason = await client.closed
      throw new Unreachable(`the daemon went away (${reason.message})`)
    },
  },
  {
    name: "call",
    rest: "METHOD [JSON]",
    summary: "call any method with JSON params (from the argument, else stdin, else {})",
    about: "Prints the result as JSON (indented unless --json). `mlsctl methods` lists the methods.",
    async run(ctx, _params, words) {
      const [method, json, ...extra] = words
      if (method === undefined) throw new UsageError("call needs a METHOD")
      if (extra.length > 0) throw new UsageError("call takes METHOD and one JSON argument (quote it)")
      const text = json ?? (ctx.stdinIsTTY ? "" : await ctx.stdinText())
      let params: unknown = {}
      if (text.trim() !== "") {
        try {
          params = JSON.parse(text)
        } catch (err) {
          throw new UsageError(`params are not JSON: ${(err as Error).message}`)
        }
      }
      const r = await ctx.call(method, params as Record<string, unknown>)
      ctx.show(r, (x) => JSON.stringify(x, null, 2))
    },
  },
  {
    name: "methods",
    method: "rpc.discover",
    summary: "the daemon's methods, each with its one-line summary",
    about: "Asks the running daemon (rpc.discover); --json prints its whole OpenRPC document.",
    run: simple("rpc.discover", (doc) =>
      columns(
        doc.methods.map((m) => {
          const summary = (m as { summary?: unknown }).summary
          return [m.name, typeof summary === "string" ? summary : ""]
        }),
      ),
    ),
  },
  {
    name: "completion",
    rest: "bash",
    summary: "print the bash completion script (source <(mlsctl completion bash))",
    async run(ctx, _params, words) {
      if (words.length !== 1 || words[0] !== "bash") throw new UsageError("completion supports: bash")
      const { bashCompletion } = await import("./completion.js")
      ctx.out(bashCompletion())
    },
  },
]

async function poolRun(ctx: Context) {
  ctx.show((await ctx.call("pool.status", {})) as R<"pool.status">, poolStatus)
}

/** The metavariable of a param in usage lines. */
export const metavar = (param: string) => (param === "username" ? "USER" : param.toUpperCase())

/** A param's JSON Schema in the method's descriptor. */
export function paramSchema(c: Command, param: string): { type?: string; description?: string } {
  const props = c.method ? (methods[c.method].params.properties as Record<string, object>) : {}
  return (props[param] ?? {}) as { type?: string; description?: string }
}

/** The one-line summary of a command: its own, or its method's. */
export const summaryOf = (c: Command) => c.summary ?? (c.method ? methods[c.method].summary : "")

/** `register USER [--server SERVER]` */
export function usageOf(c: Command): string {
  const parts = [c.name, ...(c.args ?? []).map(metavar), ...(c.rest ? [c.rest] : [])]
  parts.push(...(c.flags ?? []).map((f) => `[--${f} ${metavar(f)}]`))
  return parts.join(" ")
}

/** Converts a flag's text to its param's type (integer, comma-separated list, string). */
export function flagValue(c: Command, flag: string, text: string): unknown {
  const type = paramSchema(c, flag).type
  if (type === "integer") {
    const n = Number(text)
    if (!Number.isInteger(n)) throw new UsageError(`--${flag} must be an integer, not "${text}"`)
    return n
  }
  if (type === "array") return text.split(",").filter((s) => s !== "")
  return text
}

/** Every method and notification name this build knows, for completion (the daemon may serve more). */
export const knownMethods = () =>
  Object.values(methods)
    .filter((m) => !("testOnly" in m && m.testOnly))
    .map((m) => m.name)
export const knownEvents = () => Object.keys(notifications)
