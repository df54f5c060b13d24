#!/usr/bin/env bash
# Load-test throughput at a 10 % failure rate with retries (3 attempts, 1 ms
# first backoff) versus without, alternating in the same run.
# usage: bench/retry_overhead.sh PAIRS [crew loadtest args...]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
crew="${CREW:-$root/build/apps/crew/crew}"
pairs="${1:-5}"; shift || true
dir="$(mktemp -d)"; mkdir -p "$dir/.crew"
trap 'rm -rf "$dir"' EXIT
for i in $(seq "$pairs"); do
  "$crew" loadtest --cwd "$dir" --json --baseline-messages 0 --fail-rate 0.1 \
    --retry-attempts 3 --backoff-ms 1 "$@"
  "$crew" loadtest --cwd "$dir" --json --baseline-messages 0 --fail-rate 0.1 \
    --retry-attempts 1 "$@"
done | python3 "$root/bench/retry_stats.py"
