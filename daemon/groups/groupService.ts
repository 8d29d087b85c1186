/**
 * Groups as the daemon runs them (DESIGN §3 Groups). The work lives in one module per concern (create, invite,
 * welcome, removal, selfUpdate, send, incoming, commits, queries); this class wires the stateful parts (commits in
 * flight, the incoming log, the send batcher, the outbox sender) and owns the queue. Everything that touches a group's
 * state runs one at a time: RPC verbs (`run`, called by the handlers with the verb module) and stream items alike, so
 * an own message is stored before its echo is seen and a commit is never built on a state that is being changed.
 * Read-only queries need no queue: the handlers call `queries.ts` on `ctx.groups` directly.
 */
import type { LogEntry } from "../../rpc-schema/server/http/groups.js"
import type { GivenUp } from "../sync/stream.js"
import { Committer } from "./commits.js"
import { toAppError, type GroupContext } from "./context.js"
import { IncomingLog, type RemovedItem } from "./incoming.js"
import { OutboxSender } from "./outbox.js"
import { SendBatcher } from "./send.js"
import { dropInvitation, giveUpWelcome, onWelcome, type WelcomeItem } from "./welcome.js"

export interface GroupServiceOptions extends GroupContext {
  /** A Welcome consumed one of our KeyPackages: the pool wants a maintenance pass. */
  onKeyConsumed: () => void
}

export class GroupService {
  private queue: Promise<unknown> = Promise.resolve()
  readonly sender: OutboxSender
  readonly commits: Committer
  /** Public for `group.accept`, which reads the log of the group it joined (`incoming.catchUp`). */
  readonly incoming: IncomingLog
  readonly sends: SendBatcher

  constructor(readonly ctx: GroupServiceOptions) {
    // `part` is bound already ("groups"); pino would write a second `part` key, so the sender is named by `loop`.
    this.sender = new OutboxSender({ ...ctx, log: ctx.log.child({ loop: "outbox" }) })
    this.commits = new Committer(ctx, this.sender, (id) => this.incoming.catchUp(id))
    this.incoming = new IncomingLog(ctx, this.commits)
    this.sends = new SendBatcher(ctx, this.sender, this.commits, (task) => this.serial(task))
  }

  /** Runs `f` after everything queued before it; failures are the caller's, the queue goes on. */
  private serial<T>(f: () => Promise<T>): Promise<T> {
    const run = this.queue.then(f)
    this.queue = run.catch(() => undefined)
    return run.catch((err: unknown) => {
      throw toAppError(err)
    })
  }

  /**
   * Runs an RPC verb on the group queue. The handlers call the verb modules through here (`groups.run((g) =>
   * inviteMember(g.ctx, g.commits, ref, user))`), so a new method needs no pass-through in this class.
   */
  run<T>(verb: (g: this) => Promise<T>): Promise<T> {
    return this.serial(() => verb(this))
  }

  // ---- the stream's side ----

  /** Log entries from the stream, in order; throws only for a passing failure (the stream retries). */
  onEntries(entries: LogEntry[]): Promise<void> {
    return this.serial(() => this.incoming.applyEntries(entries))
  }

  /**
   * Retention deleted entries of a group before this daemon processed them (the stream's `pruned` frame): the cursor
   * moves past them with `group.historyLost`, and the group becomes `out_of_sync` when a Commit was among them.
   * Throws only for a passing failure (the stream retries).
   */
  onPruned(frame: { groupId: string; after: number; prunedThrough: number }): Promise<void> {
    return this.serial(() => this.incoming.onPruned(frame.groupId, frame.after, frame.prunedThrough))
  }

  /**
   * A Welcome from the inbox: join, keep it as a pending invitation (`invites = ask`), or report `invite.failed`.
   * Throws only for a passing failure.
   */
  onWelcome(item: WelcomeItem): Promise<void> {
    return this.serial(() => onWelcome(this.ctx, item, this.ctx.onKeyConsumed))
  }

  /** A removal notice from the inbox (a pending invitation of that group is dropped: its Welcome is useless now). */
  onRemoved(item: RemovedItem): Promise<void> {
    return this.serial(async () => {
      dropInvitation(this.ctx, item)
      this.incoming.onRemoved(item)
    })
  }

  /**
   * A stream item given up after repeated passing failures: a Welcome is reported (`invite.failed`,
   * `retries_exhausted`), an entry passed over. A removal notice or a retention report only stops being retried on
   * this connection (the stream logs it).
   */
  onGivenUp(what: GivenUp, error: string): Promise<void> {
    return this.serial(async () => {
      if (what.kind === "inbox" && what.item.kind === "welcome") giveUpWelcome(this.ctx, what.item, error)
      else if (what.kind === "entry") this.incoming.passOver(what.entry)
    })
  }

  /** Stops the outbox and writes the cursor moves still in memory; the database is closed after. */
  close(): void {
    this.sender.stop()
    this.incoming.flushCursors()
  }
}
