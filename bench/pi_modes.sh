#!/usr/bin/env bash
# A 20-task fan-out of real pi agents against tests/e2e/fake_llm.py, with
# runtime.piMode spawn (one pi process per task) and rpc (warm pi processes
# reused across tasks), alternating in the same run.
# usage: bench/pi_modes.sh PAIRS [TASKS] [CONCURRENCY]
# Prints per run: mode, wall seconds, crew's own CPU ms (getrusage of the crew
# process: its threads, not the pi processes) and that per task; then the
# medians and the spawn/rpc wall-time ratio.
# CREW selects the crew binary; the project tree goes to $TMPDIR (mktemp -d).
# Creating files dominates crew's per-task CPU where that is ext4 without a
# journal (see BENCHMARKS.md), so TMPDIR=/dev/shm shows crew's cost alone.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
crew="${CREW:-$root/build/apps/crew/crew}"
pairs="${1:-3}"; tasks="${2:-20}"; conc="${3:-4}"
pi="$("$root/scripts/install-pi")"
tmp="$(mktemp -d)"
server_pid=""
trap '[[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null; rm -rf "$tmp"' EXIT
python3 "$root/tests/e2e/fake_llm.py" --port 0 >"$tmp/server.out" 2>/dev/null &
server_pid=$!
port=""
while [[ -z "$port" ]]; do sleep 0.05; port="$(awk '/^PORT /{print $2}' "$tmp/server.out")"; done
# shellcheck source=../tests/e2e/pi_env.sh
source "$root/tests/e2e/pi_env.sh"
pi_env_setup "$pi" "$port" "$tmp/env" >/dev/null
proj="$tmp/project"
mkdir -p "$proj/.crew/agents" "$proj/.crew/teams" "$proj/.crew/workflows"
cat >"$proj/.crew/agents/bench-pi.md" <<'EOF'
---
name: bench-pi
description: benchmark agent
model: fake/fake-model
tools: read
inheritProjectContext: false
---

Answer briefly.
EOF
{
  printf -- '---\nname: bench\ndescription: fan-out\nmaxConcurrency: %s\n---\n' "$conc"
  for i in $(seq "$tasks"); do printf '\n## t%s\nrole: worker\n\nTask %s. Goal: {goal}\n' "$i" "$i"; done
} >"$proj/.crew/workflows/bench.workflow.md"
printf -- '---\nname: bench\ndescription: bench\ndefaultWorkflow: bench\nmaxConcurrency: %s\n---\n\n- worker: agent=bench-pi\n' "$conc" \
  >"$proj/.crew/teams/bench.team.md"
for i in $(seq "$pairs"); do
  for mode in spawn rpc; do
    start=$(date +%s%N)
    out="$("$crew" run --team bench --goal bench --cwd "$proj" --json --set "runtime.piMode=$mode" | tail -1)"
    end=$(date +%s%N)
    python3 -c '
import json, sys
o = json.loads(sys.argv[1]); mode = sys.argv[2]; secs = (int(sys.argv[4]) - int(sys.argv[3])) / 1e9
n = int(sys.argv[5])
assert o["status"] == "completed", o
cpu = o["cpuMs"]
print(f"{mode} wall {secs:.2f} s cpu {cpu} ms per-task {cpu / n:.1f} ms")
' "$out" "$mode" "$start" "$end" "$tasks"
  done
done | tee /dev/stderr | python3 -c '
import sys, statistics
rows = [l.split() for l in sys.stdin]
for mode in ("spawn", "rpc"):
    w = [float(r[2]) for r in rows if r[0] == mode]
    c = [float(r[8]) for r in rows if r[0] == mode]
    print(f"{mode}: median wall {statistics.median(w):.2f} s, crew CPU per task {statistics.median(c):.1f} ms")
sw = statistics.median([float(r[2]) for r in rows if r[0] == "spawn"])
rw = statistics.median([float(r[2]) for r in rows if r[0] == "rpc"])
print(f"spawn/rpc wall-time ratio {sw / rw:.2f}")'
