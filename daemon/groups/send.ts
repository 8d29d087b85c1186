/**
 * message.send: encrypts and queues; the outbox sender posts. The state that encrypted a message and its outbox row
 * are stored in one transaction before anything is posted: a ratchet generation is never used twice and a crash
 * loses nothing. Sends that wait together are encrypted in order and stored in ONE transaction (a group commit).
 */
import { AppError } from "../../rpc-schema/errors.js"
import { randomBytes } from "node:crypto"
import { toBase64Url } from "../../rpc-schema/common.js"
import type { MessageSendResult } from "../../rpc-schema/daemon/message.js"
import { deserializeState, epoch, serializeState } from "../mls/groupState.js"
import type { ChatGroup } from "../mls/groupState.js"
import { encryptText } from "../mls/message.js"
import type { Committer } from "./commits.js"
import { toAppError, type GroupContext } from "./context.js"
import type { OutboxSender, SendOutcome } from "./outbox.js"
import { activeGroup, requireActive } from "./queries.js"

interface QueuedSend {
  outcome: Promise<SendOutcome>
  groupId: string
  clientId: string
}

/** A message.send call waiting for the next send task. */
interface WaitingSend {
  ref: string
  text: string
  resolve: (q: QueuedSend) => void
  reject: (err: unknown) => void
}

export class SendBatcher {
  private waiting: WaitingSend[] = []

  constructor(
    private readonly ctx: GroupContext,
    private readonly sender: OutboxSender,
    private readonly commits: Committer,
    /** Runs a task on the group service's queue, after everything queued before it. */
    private readonly schedule: (task: () => Promise<void>) => Promise<void>,
  ) {}

  /** Answers once the server took the message, or at once as `queued` while it cannot be reached. */
  async send(ref: string, text: string): Promise<MessageSendResult> {
    if (text.trim() === "")
      throw new AppError("empty_message", "the message is empty or only white space; nothing sent")
    const queued = await new Promise<QueuedSend>((resolve, reject) => {
      this.waiting.push({ ref, text, resolve, reject })
      // The first waiting send schedules the task; the ones that arrive before it starts join it.
      if (this.waiting.length === 1) void this.schedule(() => this.encryptWaiting()).catch(() => undefined)
    })
    this.sender.kick()
    const o = await queued.outcome
    const base = {
      clientId: queued.clientId,
      groupId: queued.groupId,
      sender: this.ctx.username,
      senderDevice: this.ctx.deviceId,
      text,
      own: true as const,
    }
    switch (o.kind) {
      case "sent":
        return {
          ...base,
          state: "sent",
          seq: o.message.seq,
          sentAt: o.message.sentAt,
          receivedAt: o.message.receivedAt,
        }
      case "queued":
        return { ...base, state: "queued", error: o.error }
      case "failed":
        throw o.error
    }
  }

  /**
   * Every send waiting when this task starts is encrypted in order on its group's state as it evolves in memory;
   * then one transaction stores each group's final state and all the outbox rows. Each call is answered only after
   * that commit (a failed commit fails them all, and nothing of them is stored).
   */
  private async encryptWaiting(): Promise<void> {
    const batch = this.waiting
    this.waiting = []
    const states = new Map<string, { state: ChatGroup; used: boolean }>()
    const rows: { send: WaitingSend; groupId: string; clientId: Uint8Array; message: Uint8Array }[] = []
    try {
      const cs = await this.ctx.suite()
      for (const send of batch) {
        try {
          const id = activeGroup(this.ctx.groups, send.ref).id
          let current = states.get(id)
          if (current === undefined) {
            // A proposal (someone's leave) blocks application messages until committed: commit it first.
            await this.commits.commitProposals(id, cs)
            const g = this.ctx.groups.get(id)!
            requireActive(g)
            current = { state: deserializeState(g.state), used: false }
            states.set(id, current)
          }
          const { state, message } = await encryptText(current.state, send.text, cs)
          current.state = state
          current.used = true
          rows.push({ send, groupId: id, clientId: randomBytes(16), message })
        } catch (err) {
          send.reject(toAppError(err))
        }
      }
      const now = this.ctx.clock.now()
      const ids = this.ctx.db.transaction(() => {
        for (const [id, { state, used }] of states)
          if (used) this.ctx.groups.saveState(id, serializeState(state), Number(epoch(state)))
        return rows.map((r) =>
          this.ctx.outbox.add({
            groupId: r.groupId,
            clientId: r.clientId,
            message: r.message,
            text: r.send.text,
            createdAt: now,
          }),
        )
      })()
      // Waited for from here on, before the sender loop can reach the entries.
      rows.forEach((r, i) =>
        r.send.resolve({
          outcome: this.sender.wait(ids[i]!),
          groupId: r.groupId,
          clientId: toBase64Url(r.clientId),
        }),
      )
    } catch (err) {
      // Nothing was stored (a send refused earlier is settled already: rejecting it again does nothing).
      for (const send of batch) send.reject(toAppError(err))
    }
  }
}
