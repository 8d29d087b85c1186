/**
 * Groups as the daemon runs them (DESIGN §3 Groups): the one entry point of the RPC handlers and the stream. The
 * work lives in one module per concern (create, invite, welcome, removal, selfUpdate, send, incoming, commits,
 * queries); this class wires them and owns the queue. Everything that touches a group's state runs one at a time
 * (`serial`): RPC calls and stream items alike, so an own message is stored before its echo is seen and a commit is
 * never built on a state that is being changed.
 */
import type { GroupMembersResult, GroupSelfUpdateResult, GroupSummary } from "../../rpc-schema/daemon/group.js"
import type { MessageListResult, MessageSendResult } from "../../rpc-schema/daemon/message.js"
import type { LogEntry } from "../../rpc-schema/server/http/groups.js"
import type { GroupCursor } from "../../rpc-schema/server/ws.js"
import { Committer } from "./commits.js"
import { toAppError, type GroupContext } from "./context.js"
import { createGroup } from "./create.js"
import { IncomingLog, type RemovedItem } from "./incoming.js"
import { inviteMember } from "./invite.js"
import { OutboxSender } from "./outbox.js"
import { groupCursors, groupMembers, groupMessages, listGroups } from "./queries.js"
import { leaveGroup, removeMember } from "./removal.js"
import { updateOwnKeys } from "./selfUpdate.js"
import { SendBatcher } from "./send.js"
import { acceptWelcome, type WelcomeItem } from "./welcome.js"

export interface GroupServiceOptions extends GroupContext {
  /** A Welcome consumed one of our KeyPackages: the pool wants a maintenance pass. */
  onKeyConsumed: () => void
}

export class GroupService {
  private queue: Promise<unknown> = Promise.resolve()
  readonly sender: OutboxSender
  private readonly commits: Committer
  private readonly incoming: IncomingLog
  private readonly sends: SendBatcher

  constructor(private readonly o: GroupServiceOptions) {
    // `part` is bound already ("groups"); pino would write a second `part` key, so the sender is named by `loop`.
    this.sender = new OutboxSender({ ...o, log: o.log.child({ loop: "outbox" }) })
    this.commits = new Committer(o, this.sender, (id) => this.incoming.catchUp(id))
    this.incoming = new IncomingLog(o, this.commits)
    this.sends = new SendBatcher(o, this.sender, this.commits, (task) => this.serial(task))
  }

  /** Runs `f` after everything queued before it; failures are the caller's, the queue goes on. */
  private serial<T>(f: () => Promise<T>): Promise<T> {
    const run = this.queue.then(f)
    this.queue = run.catch(() => undefined)
    return run.catch((err: unknown) => {
      throw toAppError(err)
    })
  }

  list(): GroupSummary[] {
    return listGroups(this.o.groups)
  }

  members(ref: string): GroupMembersResult {
    return groupMembers(this.o.groups, ref)
  }

  messages(ref: string, before: number | undefined, limit: number): MessageListResult {
    return groupMessages(this.o.groups, this.o.outbox, ref, before, limit)
  }

  /** Where the stream resumes, per group this profile is still in. */
  cursors(): GroupCursor[] {
    return groupCursors(this.o.groups)
  }

  create(name: string): Promise<GroupSummary> {
    return this.serial(() => createGroup(this.o, name))
  }

  invite(ref: string, user: string): Promise<GroupSummary> {
    return this.serial(() => inviteMember(this.o, this.commits, ref, user))
  }

  remove(ref: string, user: string): Promise<GroupSummary> {
    return this.serial(() => removeMember(this.o, this.commits, ref, user))
  }

  leave(ref: string): Promise<GroupSummary> {
    return this.serial(() => leaveGroup(this.o, this.sender, ref))
  }

  selfUpdate(ref: string): Promise<GroupSelfUpdateResult> {
    return this.serial(() => updateOwnKeys(this.o, this.commits, ref))
  }

  send(ref: string, text: string): Promise<MessageSendResult> {
    return this.sends.send(ref, text)
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

  /** A Welcome from the inbox: join, or report `invite.failed`. Throws only for a passing failure. */
  onWelcome(item: WelcomeItem): Promise<void> {
    return this.serial(() => acceptWelcome(this.o, item, this.o.onKeyConsumed))
  }

  /** A removal notice from the inbox. */
  onRemoved(item: RemovedItem): Promise<void> {
    return this.serial(async () => this.incoming.onRemoved(item))
  }

  /** Stops the outbox and writes the cursor moves still in memory; the database is closed after. */
  close(): void {
    this.sender.stop()
    this.incoming.flushCursors()
  }
}
