#!/usr/bin/env bash
# End-to-end: a 3-step workflow of pi agents through `crew run`, with the real
# pi CLI (npm @mariozechner/pi-coding-agent, scripts/install-pi) against
# tests/e2e/fake_llm.py on a free 127.0.0.1 port.
#   scout    model fake/fake-model                      -> answers
#   fixer    model fake/fake-fail, fallback fake-second -> 429, then falls back
#   reporter prompt HANG_ONCE:<tag>                     -> the first model call
#            hangs, the response watchdog kills pi, the retry policy runs a
#            second attempt, which answers
# Checks every task completed, transcripts/results/usage, the fallback in
# modelAttempts/modelRouting and the watchdog kill in the attempts.
# usage: crew_pi_e2e.sh CREW_BINARY [spawn|rpc]   (runtime.piMode, default spawn)
# Exit 77 (ctest: skipped, never passed) when npm or node is unavailable.
set -uo pipefail

crew="${1:?usage: crew_pi_e2e.sh CREW_BINARY [spawn|rpc]}"
mode="${2:-spawn}"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
    echo "SKIPPED: npm/node unavailable, the real pi CLI cannot be installed"
    exit 77
fi
pi="$("$root/scripts/install-pi")" || { echo "FAIL: scripts/install-pi"; exit 1; }

tmp="$(mktemp -d "${TMPDIR:-/tmp}/crew-pi-e2e.XXXXXX")"
server_pid=""
cleanup() {
    [[ -n "$server_pid" ]] && { kill -TERM "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null; }
    if [[ "${KEEP_E2E_TMP:-0}" == 1 ]]; then echo "kept $tmp" >&2; else rm -rf -- "$tmp"; fi
}
trap cleanup EXIT

python3 "$here/fake_llm.py" --port 0 --log "$tmp/llm.log" >"$tmp/server.out" 2>"$tmp/server.err" &
server_pid=$!
port=""
for _ in $(seq 1 100); do
    port="$(awk '/^PORT /{print $2; exit}' "$tmp/server.out" 2>/dev/null)"
    [[ -n "$port" ]] && break
    sleep 0.05
done
[[ -n "$port" ]] || { echo "FAIL: fake server did not start"; cat "$tmp/server.err"; exit 1; }

# shellcheck source=pi_env.sh
source "$here/pi_env.sh"
pi_env_setup "$pi" "$port" "$tmp/env" || { echo "FAIL: pi_env_setup"; exit 1; }

proj="$tmp/project"
mkdir -p "$proj/.crew/agents" "$proj/.crew/teams" "$proj/.crew/workflows"
agent() { # name model fallbacks
    cat >"$proj/.crew/agents/$1.md" <<EOF
---
name: $1
description: e2e pi agent
model: $2
fallbackModels: $3
tools: read
inheritProjectContext: false
---

You are $1, a terse test agent.
EOF
}
agent e2e-scout fake/fake-model ""
agent e2e-fixer fake/fake-fail fake/fake-second
agent e2e-reporter fake/fake-model ""
cat >"$proj/.crew/teams/e2e.team.md" <<'EOF'
---
name: e2e
description: three pi agents
defaultWorkflow: e2e
---

- scout: agent=e2e-scout
- fixer: agent=e2e-fixer
- reporter: agent=e2e-reporter
EOF
cat >"$proj/.crew/workflows/e2e.workflow.md" <<'EOF'
---
name: e2e
description: scout, fix, report
---

## scout
role: scout

Look around. Goal: {goal}

## fix
role: fixer
dependsOn: scout

Fix it. Goal: {goal}

## report
role: reporter
dependsOn: fix

Report HANG_ONCE:report-e2e. Goal: {goal}
EOF
cat >"$proj/.crew/config.json" <<'EOF'
{"reliability": {"autoRetry": true,
                 "retryPolicy": {"maxAttempts": 2, "backoffMs": 100, "jitterRatio": 0}}}
EOF

# pi needs ~1-3 s to start before its first event; the hung call is silent.
export PI_TEAMS_CHILD_RESPONSE_TIMEOUT_MS=8000
start=$(date +%s)
"$crew" run --team e2e --goal "e2e" --cwd "$proj" --json --set "runtime.piMode=$mode" \
    >"$tmp/run.out" 2>"$tmp/run.err"
rc=$?
echo "crew run (piMode $mode) exit $rc after $(( $(date +%s) - start )) s"
tail -1 "$tmp/run.out"
run_id="$(ls "$proj/.crew/state/runs")"
"$crew" status "$run_id" --cwd "$proj" --json >"$tmp/status.json" 2>&1
"$crew" status "$run_id" --cwd "$proj" | sed 's/^/  /'

python3 - "$tmp/status.json" "$proj/.crew/artifacts/$run_id" "$rc" "$tmp/llm.log" <<'EOF'
import json, os, sys
status_path, artifacts, rc, llm_log = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
st = json.load(open(status_path))
tasks = {t["stepId"]: t for t in st["tasks"]}
failures = []
def check(cond, what):
    print(("PASS " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)
check(rc == 0, "crew run exits 0")
check(st["manifest"]["status"] == "completed", "the run completed")
for step in ("scout", "fix", "report"):
    t = tasks[step]
    check(t["status"] == "completed", f"{step} completed")
    result = os.path.join(artifacts, "results", t["id"] + ".txt")
    text = open(result).read() if os.path.exists(result) else ""
    check(text.startswith("Hello from "), f"{step} result holds the model's answer ({text[:40]!r})")
    tr = os.path.join(artifacts, "transcripts", t["id"] + ".jsonl")
    lines = [json.loads(l) for l in open(tr)] if os.path.exists(tr) else []
    check(any(l.get("type") == "message_end" for l in lines)
          and not any(l.get("type") == "message_update" for l in lines),
          f"{step} transcript holds compacted events")
    u = t.get("usage", {})
    check(u.get("input") == 100 and u.get("output") == 10,
          f"{step} usage input 100 output 10 (got {u})")
fix = tasks["fix"]
attempts = fix.get("modelAttempts", [])
check([(a["model"], a["success"]) for a in attempts]
      == [("fake/fake-fail", False), ("fake/fake-second", True)],
      f"fix fell back from fake-fail to fake-second ({attempts})")
check("429" in attempts[0].get("error", "") if attempts else False,
      "the fallback reason is the 429")
routing = fix.get("modelRouting", {})
check(routing.get("resolved") == "fake/fake-second", f"modelRouting.resolved ({routing})")
report = tasks["report"]
check(len(report["attempts"]) == 2, f"report ran twice ({len(report['attempts'])} attempts)")
check("watchdog" in report["attempts"][0].get("error", ""),
      f"the first report attempt was killed by the watchdog ({report['attempts'][0].get('error')})")
requests = [json.loads(l) for l in open(llm_log)]
check(sum(1 for r in requests if "fake-fail" in r.get("model", "")) == 1,
      "one request to fake-fail (pi's own retries are off)")
sys.exit(1 if failures else 0)
EOF
