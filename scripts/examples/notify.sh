#!/usr/bin/env bash
# notify.sh: one desktop-style line per received message, "[GROUP] SENDER: TEXT", until the daemon goes away;
# also shows it with notify-send when that exists.
# Run: scripts/examples/notify.sh   (MLSD_SOCKET or MLSD_PROFILE picks the daemon, as for mlsctl)
# Needs: mlsctl on PATH (npm link, or PATH="$PWD/bin:$PATH"), jq, a running mlsd.
set -euo pipefail

mlsctl --json watch --events message.received |
  jq --unbuffered -r '.params | "[\(.group)] \(.sender): \(.text | gsub("\n"; " "))"' |
  while IFS= read -r line; do
    echo "$line"
    if command -v notify-send >/dev/null; then notify-send "mls-chat" "$line" || true; fi
  done
