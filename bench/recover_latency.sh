#!/usr/bin/env bash
# Time from launching `crew recover --apply` to the first task dispatched, for
# a load-test run killed with SIGKILL once its log holds EVENTS events.
# usage: bench/recover_latency.sh ROUNDS [EVENTS] [TASKS] [LATENCY_MS]
# Each round starts `crew loadtest --tasks TASKS --latency-ms LATENCY_MS
# --keep` (slow enough that checkpoints are taken as in a real run), kills it
# with -9 as soon as events.jsonl holds EVENTS lines, launches
# `crew recover --apply`, and reads the launch time against the `time` of the
# first task.started after crew.run.resumed. Prints each round and the
# median, and runs `crew verify` on the recovered run.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
crew="${CREW:-$root/build/apps/crew/crew}"
rounds="${1:-5}"; events="${2:-1000000}"; tasks="${3:-600000}"; latency="${4:-5}"
dir="$(mktemp -d)"
trap 'pkill -9 -f "crew loadtest --cwd $dir" 2>/dev/null || true; rm -rf "$dir"' EXIT
for i in $(seq "$rounds"); do
  rm -rf "$dir/.crew" && mkdir -p "$dir/.crew"
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
  ck="none"
  [ -f "$(dirname "$log")/checkpoint.bin" ] && ck="present"
  sync
  start=$(date +%s%3N)
  "$crew" recover --apply "$run" --cwd "$dir" >/dev/null
  python3 - "$log" "$start" "$lines" "$ck" "$size" <<'EOF'
import json, sys, datetime
path, start, lines, ck = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
size = int(sys.argv[5])
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
            ev = json.loads(line)
            t = datetime.datetime.strptime(ev['time'], '%Y-%m-%dT%H:%M:%S.%fZ')
            t = t.replace(tzinfo=datetime.timezone.utc)
            ms = int(t.timestamp() * 1000) - start
            d = resumed['data']
            print(f"first dispatch {ms} ms (log {lines} events at the kill, "
                  f"checkpoint {ck}, recovered from seq {d['recoveredFromSeq']}, "
                  f"{d['resumableTasks']} interrupted attempts)")
            break
    else:
        sys.exit('no task.started after crew.run.resumed')
EOF
  "$crew" verify "$run" --cwd "$dir" >/dev/null || { echo "verify failed" >&2; exit 1; }
done | tee /dev/stderr | python3 -c '
import sys, statistics
v = [int(l.split()[2]) for l in sys.stdin if l.startswith("first dispatch")]
print(f"median first dispatch {statistics.median(v):.0f} ms over {len(v)} rounds (verify ok)")'
