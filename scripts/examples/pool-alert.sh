#!/usr/bin/env bash
# pool-alert.sh: exits 1 with a warning on stderr when the KeyPackage pool's health is not "good", for cron:
#   */15 * * * * MLSD_PROFILE=alice /path/to/mls-chat/scripts/examples/pool-alert.sh
# Needs: mlsctl on PATH (npm link, or PATH="$PWD/bin:$PATH"), jq, a running, registered mlsd (MLSD_SOCKET or
# MLSD_PROFILE picks it). When the daemon cannot be asked, it exits with mlsctl's status (3: unreachable).
set -euo pipefail

status=$(mlsctl --json pool)
health=$(jq -r .health <<<"$status")
if [[ $health != good ]]; then
  echo "pool-alert: KeyPackage pool is $health ($(jq -r '"\(.available) available, \(.reserved) reserved"' <<<"$status"))" >&2
  exit 1
fi
