#!/usr/bin/env bash
# echo-bot.sh GROUP: answers every message someone else sends in GROUP (its name or id) with "echo: TEXT".
# Run: scripts/examples/echo-bot.sh team   (MLSD_SOCKET or MLSD_PROFILE picks the daemon, as for mlsctl)
# Needs: mlsctl on PATH (npm link, or PATH="$PWD/bin:$PATH"), jq, and a running, registered mlsd in GROUP.
# message.received is only ever another member's message, so the bot never answers itself. Lines of a multi-line
# message are joined with spaces. Exits with mlsctl watch's status: 3 when the daemon goes away (restart it then).
set -euo pipefail
group=${1:?usage: echo-bot.sh GROUP}

mlsctl --json watch --events message.received |
  jq --unbuffered -r --arg g "$group" \
    'select(.params.group == $g or .params.groupId == $g) | .params.text | gsub("\n"; " ")' |
  while IFS= read -r text; do
    mlsctl send "$group" "echo: $text" >/dev/null
  done
