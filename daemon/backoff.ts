/**
 * The daemon's one retry delay: exponential backoff with "equal jitter". After the n-th failure in a row the ceiling
 * is base·2^(n−1), capped at max, and the delay is drawn from [ceiling/2, ceiling]: spread out so that daemons that
 * failed together do not retry together, yet never close to zero, so a dead server is not hammered. Used by the
 * stream's reconnects, the pool maintainer's passes and per-key uploads, and the outbox.
 */
export function backoffMs(failures: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  if (failures < 1) return 0
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(failures - 1, 30))
  return Math.round(ceiling / 2 + (random() * ceiling) / 2)
}
