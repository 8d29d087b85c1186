/**
 * A node:test reporter that prints one closing line, `summary: N passed, N failed`, in which a suite that failed on
 * its own (its body threw while its tests were being declared: a missing fixture, an import error) counts as a
 * failure. Node 20's own totals count only tests, so such a run said `# fail 0` and still exited 1. Plain JavaScript:
 * the runner loads reporters before tsx's loader.
 */

/** A suite also fails when only its tests failed; those are counted already. */
const ownFailure = (error) => error?.failureType !== "subtestsFailed"

export default async function* summaryReporter(source) {
  let passed = 0
  const failed = []
  for await (const event of source) {
    const { name, file, details } = event.data ?? {}
    const suite = details?.type === "suite"
    if (event.type === "test:pass" && !suite) passed++
    if (event.type === "test:fail" && (!suite || ownFailure(details.error))) {
      failed.push(`${suite ? "suite" : "test"} ${name}${file ? ` (${file})` : ""}`)
    }
  }
  if (failed.length > 0) yield `\nfailed:\n${failed.map((f) => `  ${f}\n`).join("")}`
  yield `\nsummary: ${passed} passed, ${failed.length} failed\n`
}
