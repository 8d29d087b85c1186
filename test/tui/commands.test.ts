import assert from "node:assert/strict"
import { describe, it } from "node:test"
import { parseCommand, type Command } from "../../tui/commands.js"

const cases: [string, Command][] = [
  ["hello there", { kind: "send", text: "hello there" }],
  ["//slash", { kind: "send", text: "/slash" }],
  ["   ", { kind: "none" }],
  ["/create my team", { kind: "create", name: "my team" }],
  ["/create", { kind: "error", message: "usage: /create NAME" }],
  ["/invite bob carol bob", { kind: "invite", users: ["bob", "carol"] }],
  ["/invite", { kind: "error", message: "usage: /invite USER…" }],
  ["/invite Bob", { kind: "error", message: "not a user name: Bob (a-z, 0-9, . _ -; up to 32)" }],
  ["/remove bob", { kind: "remove", user: "bob" }],
  ["/remove bob carol", { kind: "error", message: "usage: /remove USER" }],
  ["/members", { kind: "members" }],
  ["/leave", { kind: "leave" }],
  ["/rotate", { kind: "rotate" }],
  ["/rejoin", { kind: "rejoin" }],
  ["/rejoin now", { kind: "error", message: "/rejoin takes no arguments" }],
  ["/accept", { kind: "accept", name: undefined }],
  ["/accept my team", { kind: "accept", name: "my team" }],
  ["/decline ops", { kind: "decline", name: "ops" }],
  ["/pool", { kind: "pool" }],
  ["/help", { kind: "help" }],
  ["/quit", { kind: "quit" }],
  ["/quit now", { kind: "error", message: "/quit takes no arguments" }],
  ["/join x", { kind: "error", message: "unknown command /join (/help lists them)" }],
]

describe("tui slash commands", () => {
  for (const [line, expected] of cases) {
    it(`parses ${JSON.stringify(line)}`, () => assert.deepEqual(parseCommand(line), expected))
  }
})
