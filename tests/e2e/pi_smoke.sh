#!/usr/bin/env bash
# Smoke test of the real pi CLI against tests/e2e/fake_llm.py.
#
# Installs pi (scripts/install-pi, pinned version), starts the fake server on a
# free 127.0.0.1 port, and runs, in parallel,
#   pi --mode json --no-session --model fake/<model> <flags>  <prompt.txt
# with the prompt on stdin (a file, not a tty). Checks:
#   (a) plain prompt   -> exit 0, final stopReason "stop", usage input 100 / output 10
#   (b) fake/fake-fail -> exit 0, stopReason "error", errorMessage mentions 429 / rate limit,
#                         and exactly one request reached the server (retries are off)
#   (c) USE_TOOL       -> the bash tool ran `echo hello-from-tool`, final answer quotes it
# Prints PASS/FAIL per check; exit 1 if any check failed.
# Env: CREW_PI_PREFIX (install prefix), KEEP_E2E_TMP=1 keeps the temp dir.
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
    echo "SKIPPED: npm/node unavailable, the real pi CLI cannot be installed"
    exit 77
fi
pi="$("$root/scripts/install-pi")" || { echo "FAIL install-pi"; exit 1; }

tmp="$(mktemp -d "${TMPDIR:-/tmp}/crew-pi-smoke.XXXXXX")"
server_pid=""
# shellcheck disable=SC2317  # invoked via trap
cleanup() {
    if [[ -n "$server_pid" ]]; then
        kill -TERM "$server_pid" 2>/dev/null
        wait "$server_pid" 2>/dev/null
    fi
    if [[ "${KEEP_E2E_TMP:-0}" == 1 ]]; then
        echo "kept $tmp" >&2
    else
        rm -rf -- "$tmp"
    fi
}
trap cleanup EXIT

python3 "$here/fake_llm.py" --port 0 --log "$tmp/llm.log" >"$tmp/server.out" 2>"$tmp/server.err" &
server_pid=$!
port=""
for _ in $(seq 1 100); do
    port="$(awk '/^PORT /{print $2; exit}' "$tmp/server.out" 2>/dev/null)"
    [[ -n "$port" ]] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
done
if [[ -z "$port" ]]; then
    echo "FAIL fake server did not start"; cat "$tmp/server.err" >&2; exit 1
fi

# shellcheck source=pi_env.sh
source "$here/pi_env.sh"
pi_env_setup "$pi" "$port" "$tmp/env" || { echo "FAIL pi_env_setup"; exit 1; }
mkdir -p "$tmp/work"

# run_pi NAME MODEL PROMPT: runs pi in the background, events in $tmp/NAME.jsonl
run_pi() {
    local name="$1" model="$2" prompt="$3"
    printf '%s\n' "$prompt" >"$tmp/$name.prompt"
    local -a flags
    read -r -a flags <<<"$PI_E2E_FLAGS"
    (
        cd "$tmp/work" || exit 1
        timeout 60 "$PI_BIN" --mode json --no-session --model "fake/$model" "${flags[@]}" \
            <"$tmp/$name.prompt" >"$tmp/$name.jsonl" 2>"$tmp/$name.err"
        echo $? >"$tmp/$name.rc"
    ) &
}

run_pi plain fake-model "Say hello (smoke-plain)"
run_pi fail  fake-fail  "Say hello (smoke-fail)"
run_pi tool  fake-model "Please USE_TOOL now (smoke-tool)"
for n in plain fail tool; do
    while [[ ! -s "$tmp/$n.rc" ]]; do sleep 0.05; done   # each run is bounded by timeout 60
done

# check NAME: evaluates the event stream with python, prints PASS/FAIL line
check() {
    local name="$1" label="$2"
    if python3 - "$name" "$tmp" <<'PY'
import json, sys
name, tmp = sys.argv[1], sys.argv[2]
rc = int(open(f"{tmp}/{name}.rc").read().strip() or -1)
events = []
for line in open(f"{tmp}/{name}.jsonl", encoding="utf-8"):
    line = line.strip()
    if line:
        events.append(json.loads(line))
finals = [e["message"] for e in events
          if e.get("type") == "message_end" and e.get("message", {}).get("role") == "assistant"]
if not finals:
    sys.exit(f"no assistant message_end (rc={rc}); stderr: {open(f'{tmp}/{name}.err').read()[-500:]}")
last = finals[-1]
text = "".join(c.get("text", "") for c in last.get("content", []) if c.get("type") == "text")
stop, err, usage = last.get("stopReason"), last.get("errorMessage", ""), last.get("usage", {})
log = [json.loads(l) for l in open(f"{tmp}/llm.log") if l.strip()]
def fail(msg):
    sys.exit(f"{msg} (rc={rc} stopReason={stop} errorMessage={err!r} usage={usage} text={text!r})")
if rc != 0:
    fail("exit code not 0")
if not any(e.get("type") == "agent_end" for e in events):
    fail("no agent_end event")
if name == "plain":
    if stop != "stop": fail("stopReason not stop")
    if usage.get("input") != 100 or usage.get("output") != 10: fail("usage not 100/10")
    if "fake-model" not in text: fail("answer does not name the model")
elif name == "fail":
    if stop != "error": fail("stopReason not error")
    if "429" not in err and "rate limit" not in err.lower(): fail("errorMessage lacks 429/rate limit")
    n = sum(1 for r in log if r["prompt"].startswith("Say hello (smoke-fail)"))
    if n != 1: fail(f"{n} requests reached the server, expected 1 (retries not disabled?)")
elif name == "tool":
    ends = [e for e in events if e.get("type") == "tool_execution_end"]
    if not ends: fail("no tool_execution_end")
    out = "".join(c.get("text", "") for c in ends[0].get("result", {}).get("content", []))
    if ends[0].get("toolName") != "bash" or ends[0].get("isError") or "hello-from-tool" not in out:
        fail(f"tool run wrong: {ends[0].get('toolName')} isError={ends[0].get('isError')} out={out!r}")
    if stop != "stop" or "hello-from-tool" not in text: fail("final answer does not quote the tool output")
    if len(finals) != 2: fail(f"{len(finals)} assistant messages, expected 2")
PY
    then
        echo "PASS $label"
        return 0
    else
        echo "FAIL $label"
        return 1
    fi
}

failed=0
check plain "(a) plain prompt: stopReason stop, usage 100/10" || failed=1
check fail  "(b) fake/fake-fail: exit 0, stopReason error, 429 rate limit, 1 request" || failed=1
check tool  "(c) USE_TOOL: bash tool ran echo hello-from-tool" || failed=1
exit "$failed"
