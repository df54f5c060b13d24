#!/usr/bin/env bash
# Runs `crew loadtest --json` N times with the given arguments and prints the
# median of each figure (these machines are shared and noisy).
# usage: bench/loadtest_medians.sh N [crew loadtest args...]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
crew="${CREW:-$root/build/apps/crew/crew}"
n="${1:-5}"; shift || true
dir="$(mktemp -d)"; mkdir -p "$dir/.crew"
trap 'rm -rf "$dir"' EXIT
for i in $(seq "$n"); do
  "$crew" loadtest --cwd "$dir" --json "$@"
done | python3 "$root/bench/loadtest_medians.py"
