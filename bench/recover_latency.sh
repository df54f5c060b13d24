#!/usr/bin/env bash
# Time from launching `crew recover --apply` to the first task dispatched, for
# a load-test run killed with SIGKILL once its log holds EVENTS events.
# usage: bench/recover_latency.sh ROUNDS [EVENTS] [TASKS] [LATENCY_MS]
# Each round starts `crew loadtest --tasks TASKS --latency-ms LATENCY_MS
# --keep` (slow enough that checkpoints are taken as in a real run), kills it
# with -9 as soon as events.jsonl holds EVENTS lines, then recovers two
# copies of that crash state: one without plan.bin and checkpoint.bin (the
# baseline: plan.json parsed, the whole log replayed) and the original. For
# each, the launch time of `crew recover --apply` is read against the `time`
# of the first task.started after crew.run.resumed, and `crew verify` must
# pass. Prints each recovery, the medians and the speed-up.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
crew="${CREW:-$root/build/apps/crew/crew}"
rounds="${1:-5}"; events="${2:-1000000}"; tasks="${3:-600000}"; latency="${4:-5}"
dir="$(mktemp -d)"
trap 'pkill -9 -f "crew loadtest --cwd $dir" 2>/dev/null || true; rm -rf "$dir"' EXIT

first_dispatch() { # LOG START_MS LINES VARIANT SIZE
  python3 - "$@" <<'PY'
import json, sys, datetime
path, start, lines, variant, size = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
def ms(ev):
    t = datetime.datetime.strptime(ev['time'], '%Y-%m-%dT%H:%M:%S.%fZ')
    return int(t.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)
resumed = None
with open(path, 'rb') as f:
    f.seek(max(0, size - 65536))
    f.readline()
    for line in f:
        if resumed is None:
            if b'"crew.run.resumed"' in line:
                resumed = json.loads(line)
            continue
        if b'"task.started"' in line:
            d = resumed['data']
            tail = d['recoveredFromSeq'] - d.get('checkpointSeq', 0)
            print(f"{variant:11s} first dispatch {ms(json.loads(line)) - start} ms "
                  f"(log {lines} events at the kill, checkpoint seq "
                  f"{d.get('checkpointSeq', 0)}: {tail} events replayed, "
                  f"{d['resumableTasks']} interrupted attempts)")
            break
    else:
        sys.exit('no task.started after crew.run.resumed')
PY
}

for i in $(seq "$rounds"); do
  rm -rf "$dir/.crew" "$dir/base" && mkdir -p "$dir/.crew"
  "$crew" loadtest --cwd "$dir" --tasks "$tasks" --latency-ms "$latency" --keep \
    --baseline-messages 0 >/dev/null 2>&1 &
  pid=$!
  log=""
  while [ -z "$log" ]; do
    log="$(ls "$dir"/.crew/state/runs/*/events.jsonl 2>/dev/null || true)"
    sleep 0.05
  done
  # each loadtest event line is ~340 bytes: poll the size, then count lines
  while [ "$(stat -c %s "$log")" -lt $((events * 330)) ]; do
    kill -0 "$pid" 2>/dev/null || { echo "loadtest ended before $events events" >&2; exit 1; }
    sleep 0.02
  done
  while [ "$(wc -l < "$log")" -lt "$events" ]; do sleep 0.01; done
  kill -9 "$pid"; wait "$pid" 2>/dev/null || true
  run="$(basename "$(dirname "$log")")"
  lines=$(wc -l < "$log")
  size=$(stat -c %s "$log")
  mkdir -p "$dir/base" && cp -a "$dir/.crew" "$dir/base/.crew"
  rm -f "$dir/base/.crew/state/runs/$run/checkpoint.bin" \
        "$dir/base/.crew/state/runs/$run/plan.bin"
  for variant in full-replay checkpoint; do
    where="$dir"; [ "$variant" = full-replay ] && where="$dir/base"
    sync
    start=$(date +%s%3N)
    "$crew" recover --apply "$run" --cwd "$where" >/dev/null
    first_dispatch "$where/.crew/state/runs/$run/events.jsonl" "$start" "$lines" "$variant" "$size"
    "$crew" verify "$run" --cwd "$where" >/dev/null || { echo "verify failed" >&2; exit 1; }
  done
done | tee /dev/stderr | python3 -c '
import sys, statistics
rows = [l.split() for l in sys.stdin if "first dispatch" in l]
med = {}
for variant in ("full-replay", "checkpoint"):
    v = [int(r[3]) for r in rows if r[0] == variant]
    med[variant] = statistics.median(v)
    print(f"{variant}: median first dispatch {med[variant]:.0f} ms over {len(v)} rounds, verify ok")
ratio = med["full-replay"] / med["checkpoint"]
print(f"speed-up {ratio:.1f}x")'
