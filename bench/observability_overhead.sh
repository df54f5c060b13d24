#!/usr/bin/env bash
# Load-test throughput with metrics, the JSONL sink and a live OTLP exporter
# on, versus all off, alternating in the same run (shared, noisy machines).
# usage: bench/observability_overhead.sh PAIRS [crew loadtest args...]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
crew="${CREW:-$root/build/apps/crew/crew}"
pairs="${1:-5}"; shift || true
dir="$(mktemp -d)"; mkdir -p "$dir/.crew"
python3 "$root/bench/otlp_sink.py" > "$dir/port" 2> "$dir/sink.log" &
sink=$!
trap 'kill $sink 2>/dev/null; wait $sink 2>/dev/null; cat "$dir/sink.log" >&2; rm -rf "$dir"' EXIT
for _ in $(seq 50); do [ -s "$dir/port" ] && break; sleep 0.1; done
url="http://127.0.0.1:$(head -n1 "$dir/port")/v1/metrics"
for i in $(seq "$pairs"); do
  "$crew" loadtest --cwd "$dir" --json --baseline-messages 0 --metrics on \
    --metrics-jsonl --otlp-endpoint "$url" --export-interval-ms 100 "$@"
  "$crew" loadtest --cwd "$dir" --json --baseline-messages 0 --metrics off "$@"
done | python3 "$root/bench/overhead_stats.py"
