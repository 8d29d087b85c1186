/** Chat scenarios over real daemons: registered users, groups with members joined, sends with a window. */
import type { TestContext } from "node:test"
import type { DaemonClient } from "../../daemon-client/index.js"
import { startDaemon, type DaemonOptions, type TestDaemon } from "./daemon.js"

/** A registered daemon subscribed to every event, with its pool on the server. */
export async function registered(
  t: TestContext,
  server: string,
  name: string,
  opts: DaemonOptions = {},
): Promise<TestDaemon> {
  const d = await startDaemon(t, { server, profile: name, ...opts })
  await d.client.call("events.subscribe", { after: 0 })
  await d.client.call("identity.register", { username: name })
  await d.client.call("pool.refresh")
  return d
}

/** `owner` creates group `name` and invites each of `others` (name → daemon), waiting until each joined. */
export async function groupWith(owner: TestDaemon, name: string, others: Record<string, TestDaemon>) {
  const g = await owner.client.call("group.create", { name })
  for (const [user, d] of Object.entries(others)) {
    const joined = d.client.next("group.joined", (p) => p.groupId === g.groupId, 20_000)
    await owner.client.call("group.invite", { group: g.groupId, user })
    await joined
  }
  return g
}

/**
 * Sends `texts` in order with up to `window` calls in flight (calls enter the daemon's queue in the order they are
 * made). `onAck` sees each acknowledged index; the first failure rejects.
 */
export async function sendAll(
  client: DaemonClient,
  group: string,
  texts: string[],
  window: number,
  onAck: (i: number) => void = () => undefined,
): Promise<void> {
  let next = 0
  const worker = async () => {
    while (next < texts.length) {
      const i = next++
      await client.call("message.send", { group, text: texts[i]! })
      onAck(i)
    }
  }
  await Promise.all(Array.from({ length: window }, worker))
}

/** A group's whole history, oldest first. */
export async function history(client: DaemonClient, group: string): Promise<string[]> {
  const out: string[] = []
  let before: number | undefined
  for (;;) {
    const page = await client.call("message.list", { group, limit: 500, ...(before !== undefined && { before }) })
    out.unshift(...page.messages.map((m) => m.text))
    if (!page.more) return out
    before = page.messages[0]!.seq
  }
}
