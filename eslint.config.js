// Lint rules, plus the folder boundaries of STYLE.md: rpc-schema imports no other top-level
// folder; shared/ imports no other folder; server, daemon and the frontends never reach into each other.
import js from "@eslint/js"
import tseslint from "typescript-eslint"

const forbid = (...folders) => ({
  "no-restricted-imports": [
    "error",
    {
      patterns: folders.map((f) => ({
        // rpc-schema/server and rpc-schema/daemon are contracts every side may import, not the folders themselves.
        group: [`**/${f}/**`, `**/${f}`, "!**/rpc-schema/**"],
        message: `this folder must not import ${f}/`,
      })),
    },
  ],
})

export default tseslint.config(
  { ignores: ["node_modules/**", "test/bench/results/**", ".tmp/**", "dist/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/consistent-type-imports": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
    },
  },
  // Tests poke at raw JSON answers; typing every body would only restate the contracts.
  { files: ["test/**"], rules: { "@typescript-eslint/no-explicit-any": "off" } },
  { files: ["rpc-schema/**"], rules: forbid("server", "daemon", "tui", "scripts", "crypto") },
  { files: ["crypto/**"], rules: forbid("server", "daemon", "tui", "scripts") },
  { files: ["server/**"], rules: forbid("daemon", "tui", "scripts") },
  { files: ["daemon/**"], rules: forbid("server", "tui", "scripts") },
  // shared/ is imported by server and daemon alike, so it imports neither (nor anything else of ours).
  { files: ["shared/**"], rules: forbid("server", "daemon", "daemon-client", "tui", "scripts", "crypto") },
  { files: ["daemon-client/**"], rules: forbid("server", "daemon", "tui", "scripts", "crypto") },
  { files: ["tui/**", "scripts/**"], rules: forbid("server", "daemon/store", "daemon/mls", "daemon/pool", "crypto") },
)
