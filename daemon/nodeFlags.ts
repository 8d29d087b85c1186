/**
 * The Node flags the daemon runs with. Every launcher passes them: bin/mlsd, `npm run daemon`, scripts/start.ts, the
 * test and bench helpers, and `npm run bench` (whose groups and crypto benches run the daemon's MLS code in-process).
 * V8 reads them only at start-up, so they cannot be set from inside; the daemon logs a warning when they are missing.
 *
 * `--max-semi-space-size=64`: V8's young generation may grow to 64 MB per semi-space instead of 16. Joining a big
 * group decodes the whole ratchet tree (~200,000 objects at 10,000 members, all of which live on) while checking every
 * leaf: under the default that ran 8 scavenges of 9–36 ms each, copying the same survivors again and again while
 * competing for the second core with the signature checks. `npm run bench -- groups --sizes 1000,10000`, runs with
 * and without alternating: join 568–610 → 459–538 ms at 10,000 members and 56 → 45–52 ms at 1,000, add-one Commit
 * 93–99 → 56–72 ms at 10,000 (32 MB gave about half of that). V8 grows the young generation only while the allocation
 * rate asks for it, so an idle daemon does not hold it.
 */
export const daemonNodeFlags: readonly string[] = ["--max-semi-space-size=64"]

/** The flags this process was started without (on the command line or in NODE_OPTIONS). */
export function missingNodeFlags(): string[] {
  const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? "").split(/\s+/)]
  return daemonNodeFlags.filter((flag) => !given.includes(flag))
}
