#!/usr/bin/env python3
"""Probe of the real pi CLI's rpc mode (`pi --mode rpc --no-session`).

Starts tests/e2e/fake_llm.py, builds the isolated environment of
tests/e2e/pi_env.sh, then drives pi over stdin/stdout and records what it does:
framing, responses, events, a fresh conversation between two prompts
(`new_session`), set_model, errors, abort of a hung model call, stdin close
and SIGTERM. Prints a report; `--transcript FILE` writes every line sent and
received (with timestamps) as JSONL.

Usage: rpc_probe.py [--pi PATH] [--transcript FILE] [--keep]
Exit 1 when one of the facts the C++ side relies on does not hold.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

failures: list[str] = []
transcript: list[dict] = []


def check(cond: bool, what: str) -> bool:
    print(f"  {'ok  ' if cond else 'FAIL'} {what}")
    if not cond:
        failures.append(what)
    return cond


def short(obj, n: int = 400) -> str:
    s = json.dumps(obj, separators=(",", ":"))
    return s if len(s) <= n else s[:n] + f"...(+{len(s) - n})"


def strip_event(e: dict) -> dict:
    """An event without the bulky repeated message payloads, for printing."""
    e = dict(e)
    if e.get("type") == "message_update":
        ame = dict(e.get("assistantMessageEvent", {}))
        ame.pop("partial", None)
        e["assistantMessageEvent"] = ame
        e["message"] = "..."
    if e.get("type") == "agent_end":
        e["messages"] = [f"<{m.get('role')}>" for m in e.get("messages", [])]
    return e


class FakeServer:
    def __init__(self, log: Path):
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "fake_llm.py"), "--port", "0", "--log", str(log)],
            stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"fake server did not start: {line!r}")
        self.port = int(line.split()[1])

    def requests(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(l) for l in self.log.read_text().splitlines() if l.strip()]

    def wait_request(self, pred, timeout: float = 15.0) -> dict | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for r in self.requests():
                if pred(r):
                    return r
            time.sleep(0.02)
        return None

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Pi:
    """One `pi --mode rpc` process; stdout read on a thread, split on \\n only."""

    def __init__(self, label: str, pi: str, args: list[str], env: dict, cwd: Path,
                 session_args: tuple[str, ...] = ("--no-session",)):
        self.label = label
        self.t0 = time.monotonic()
        self.stderr_path = cwd.parent / f"{label}.stderr"
        self.proc = subprocess.Popen(
            [pi, "--mode", "rpc", *session_args, *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=open(self.stderr_path, "wb"), env=env, cwd=cwd,
            start_new_session=True)
        self.lines: list[tuple[float, dict]] = []
        self.cond = threading.Condition()
        self.eof = False
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.next_id = 0

    def now(self) -> float:
        return time.monotonic() - self.t0

    def _read(self):
        for raw in self.proc.stdout:  # bytes: splits on b"\n" only
            raw = raw.rstrip(b"\n").rstrip(b"\r")
            if not raw:
                continue
            t = self.now()
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError:
                obj = {"type": "<non-json>", "raw": raw.decode(errors="replace")}
            transcript.append({"proc": self.label, "t": round(t, 4), "dir": "out", "obj": obj})
            with self.cond:
                self.lines.append((t, obj))
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def send(self, obj: dict | str, with_id: bool = True) -> str | None:
        rid = None
        if isinstance(obj, dict):
            obj = dict(obj)
            if with_id and "id" not in obj:
                self.next_id += 1
                obj["id"] = f"{self.label}-{self.next_id}"
            rid = obj.get("id")
            data = json.dumps(obj)
        else:
            data = obj
        transcript.append({"proc": self.label, "t": round(self.now(), 4), "dir": "in",
                           "obj": obj if isinstance(obj, dict) else {"raw": obj}})
        self.proc.stdin.write(data.encode() + b"\n")
        self.proc.stdin.flush()
        return rid

    def mark(self) -> int:
        with self.cond:
            return len(self.lines)

    def wait_for(self, pred, start: int = 0, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        with self.cond:
            i = start
            while True:
                while i < len(self.lines):
                    t, obj = self.lines[i]
                    if pred(obj):
                        return i, t, obj
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0 or self.eof:
                    return None, None, None
                self.cond.wait(left)

    def request(self, obj: dict, timeout: float = 30.0):
        start = self.mark()
        rid = self.send(obj)
        _, t, resp = self.wait_for(
            lambda o: o.get("type") == "response" and o.get("id") == rid, start, timeout)
        return resp

    def wait_agent_end(self, start: int, timeout: float = 30.0):
        return self.wait_for(lambda o: o.get("type") == "agent_end", start, timeout)

    def events(self, start: int = 0, end: int | None = None) -> list[dict]:
        with self.cond:
            return [o for _, o in self.lines[start:end]]

    def close_stdin_and_wait(self, timeout: float = 10.0):
        t = time.monotonic()
        self.proc.stdin.close()
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            rc = None
        return rc, time.monotonic() - t

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()


def last_assistant(messages: list[dict]) -> dict | None:
    for m in reversed(messages):
        if m.get("role") == "assistant":
            return m
    return None


def text_of(msg: dict | None) -> str:
    if not msg:
        return ""
    return "".join(c.get("text", "") for c in msg.get("content", []) if c.get("type") == "text")


def setup_env(pi_bin: str, port: int, base: Path) -> dict:
    out = subprocess.run(
        ["bash", "-c", 'source "$1/pi_env.sh" && pi_env_setup "$2" "$3" "$4" && env -0',
         "x", str(HERE), pi_bin, str(port), str(base)],
        check=True, capture_output=True)
    env = {}
    for item in out.stdout.split(b"\0"):
        if b"=" in item:
            k, v = item.split(b"=", 1)
            env[k.decode()] = v.decode()
    return env


def run_prompt(p: Pi, message: str, timeout: float = 30.0):
    """Sends a prompt; returns (response, agent_end, t_sent, t_response, t_end, start_index)."""
    start = p.mark()
    t_sent = p.now()
    rid = p.send({"type": "prompt", "message": message})
    _, t_resp, resp = p.wait_for(
        lambda o: o.get("type") == "response" and o.get("id") == rid, start, timeout)
    _, t_end, end = p.wait_agent_end(start, timeout)
    return resp, end, t_sent, t_resp, t_end, start


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pi", help="pi binary (default: scripts/install-pi)")
    ap.add_argument("--transcript", help="write every line sent/received as JSONL here")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()

    pi_bin = args.pi or subprocess.run([str(ROOT / "scripts" / "install-pi")], check=True,
                                       capture_output=True, text=True).stdout.strip()
    version = json.loads((Path(pi_bin).resolve().parent.parent / "package.json").read_text())["version"]
    tmp = Path(tempfile.mkdtemp(prefix="crew-rpc-probe."))
    server = FakeServer(tmp / "llm.log")
    env = setup_env(pi_bin, server.port, tmp / "env")
    flags = env["PI_E2E_FLAGS"].split()
    work = tmp / "work"
    work.mkdir()
    settings_path = Path(env["PI_CODING_AGENT_DIR"]) / "settings.json"
    settings_before = settings_path.read_text()
    procs: list[Pi] = []
    print(f"pi {version} at {pi_bin}; fake server 127.0.0.1:{server.port}; tmp {tmp}")

    try:
        # ------------------------------------------------------------------
        print("\n[1] two prompts in one process, new_session between them")
        p = Pi("main", pi_bin, ["--model", "fake/fake-model",
                                "--append-system-prompt", "CREW-APPEND-MARKER", *flags], env, work)
        procs.append(p)
        resp1, end1, ts1, tr1, te1, s1 = run_prompt(p, "First task (rpc-probe-1)")
        print(f"  prompt 1: response {short(resp1)}")
        print(f"  prompt 1: sent at {ts1:.3f}s after spawn, response at {tr1:.3f}s, agent_end at {te1:.3f}s")
        check(resp1 == {"id": "main-1", "type": "response", "command": "prompt", "success": True},
              'prompt response is {"id","type":"response","command":"prompt","success":true}')
        check(end1 is not None, "agent_end arrives for prompt 1")
        evs = p.events(s1)
        kinds = [e.get("type") for e in evs]
        print(f"  event types: {kinds}")
        check(kinds.index("response") < kinds.index("agent_start") if "agent_start" in kinds else False,
              "the prompt response comes before agent_start")
        check("session" not in kinds, "no 'session' header line in rpc mode (unlike --mode json)")
        a1 = last_assistant(end1["messages"]) if end1 else None
        print(f"  answer 1: {text_of(a1)!r} stopReason={a1 and a1.get('stopReason')} usage={a1 and a1.get('usage', {}).get('input')}/{a1 and a1.get('usage', {}).get('output')}")
        check(bool(a1) and a1.get("stopReason") == "stop", "prompt 1 stopReason stop")
        after_end = p.wait_for(lambda o: True, (p.events().index(end1) + 1) if end1 else 0, 0.3)[2]
        print(f"  first line after agent_end within 0.3 s: {short(after_end) if after_end else None}")

        stats = p.request({"type": "get_session_stats"})
        print(f"  get_session_stats: {short(stats, 700)}")
        st = p.request({"type": "get_state"})
        print(f"  get_state: {short(st, 600)}")

        t_ns = p.now()
        ns = p.request({"type": "new_session"})
        t_ns_done = p.now()
        print(f"  new_session response: {short(ns)}  ({(t_ns_done - t_ns) * 1000:.0f} ms)")
        check(ns == {"id": ns and ns.get("id"), "type": "response", "command": "new_session",
                     "success": True, "data": {"cancelled": False}},
              'new_session -> {"type":"response","command":"new_session","success":true,"data":{"cancelled":false}}')
        st2 = p.request({"type": "get_state"})
        print(f"  get_state after new_session: messageCount={st2['data'].get('messageCount')} "
              f"sessionId changed={st2['data'].get('sessionId') != st['data'].get('sessionId')} "
              f"sessionFile={st2['data'].get('sessionFile')!r} model={st2['data']['model']['id']}")
        check(st2["data"].get("messageCount") == 0, "messageCount is 0 after new_session")

        resp2, end2, ts2, tr2, te2, s2 = run_prompt(p, "Second task (rpc-probe-2)")
        print(f"  prompt 2: response after {(tr2 - ts2) * 1000:.0f} ms, agent_end after {(te2 - ts2) * 1000:.0f} ms")
        a2 = last_assistant(end2["messages"]) if end2 else None
        print(f"  answer 2: {text_of(a2)!r}")
        reqs = server.requests()
        r2 = [r for r in reqs if r["prompt"] == "Second task (rpc-probe-2)"]
        check(len(r2) == 1 and r2[0]["roles"] == ["system", "user"],
              f"the LLM request of prompt 2 carries only [system, user] (fresh conversation): {r2[0]['roles'] if r2 else None}")
        r1 = [r for r in reqs if r["prompt"] == "First task (rpc-probe-1)"]
        check(bool(r1) and "CREW-APPEND-MARKER" in r1[0]["system"] and "CREW-APPEND-MARKER" in r2[0]["system"],
              "--append-system-prompt text is in the system prompt of both prompts (kept over new_session)")
        check(bool(r1) and r1[0]["system"] == r2[0]["system"],
              "system prompt identical before and after new_session")
        print(f"  system prompt length {len(r2[0]['system'])} chars; tail: {r2[0]['system'][-160:]!r}")
        stray = sorted(str(x.relative_to(tmp)) for x in tmp.rglob("*.jsonl") if x.name != "llm.log")
        print(f"  .jsonl files under the temp dir after prompt 2: {stray}")
        in_cwd = [x for x in stray if x.startswith("work/")]
        if in_cwd:
            print("  NOTE pi bug: with --no-session, new_session switches to a *persisted* session whose\n"
                  "       sessionDir is \"\", so the session file is written relative to pi's cwd (the task dir).")

        # third prompt without new_session: conversation continues
        resp3, end3, ts3, tr3, te3, _ = run_prompt(p, "Follow-up in same conversation (rpc-probe-3)")
        r3 = [r for r in server.requests() if r["prompt"].startswith("Follow-up in same conversation")]
        check(bool(r3) and r3[0]["roles"] == ["system", "user", "assistant", "user"],
              f"without new_session the next prompt continues the conversation: {r3[0]['roles'] if r3 else None}")
        print(f"  prompt 3 (no reset): agent_end after {(te3 - ts3) * 1000:.0f} ms")

        # ------------------------------------------------------------------
        print("\n[2] set_model per prompt")
        p.request({"type": "new_session"})
        sm = p.request({"type": "set_model", "provider": "fake", "modelId": "fake-second"})
        print(f"  set_model response: {short(sm, 500)}")
        check(bool(sm) and sm.get("success") and sm["data"]["id"] == "fake-second", "set_model fake/fake-second succeeds")
        resp, end, *_ = run_prompt(p, "Which model (rpc-probe-model)")
        rm = [r for r in server.requests() if r["prompt"] == "Which model (rpc-probe-model)"]
        print(f"  new_session, set_model, prompt: LLM request went to {rm[0]['model'] if rm else None}; "
              f"answer {text_of(last_assistant(end['messages']))!r}")
        check(bool(rm) and rm[0]["model"] == "fake-second", "set_model after new_session applies to the next prompt")
        p.request({"type": "new_session"})
        stm = p.request({"type": "get_state"})
        print(f"  model after a further new_session: {stm['data']['model']['id']} (process started with --model fake/fake-model)")
        check(stm["data"]["model"]["id"] == "fake-model",
              "new_session resets the model to the --model of the command line")
        settings_after = settings_path.read_text()
        changed = settings_after != settings_before
        print(f"  settings.json changed by set_model: {changed}")
        if changed:
            print(f"    now: {json.dumps(json.loads(settings_after))}")
        bad = p.request({"type": "set_model", "provider": "fake", "modelId": "no-such"})
        print(f"  set_model unknown id: {short(bad)}")
        p.request({"type": "set_model", "provider": "fake", "modelId": "fake-model"})
        settings_path.write_text(settings_before)

        # ------------------------------------------------------------------
        print("\n[3] errors")
        start = p.mark()
        p.send({"id": "u1", "type": "no_such_command"})
        _, _, unk = p.wait_for(lambda o: o.get("type") == "response", start, 5)
        print(f"  unknown command -> {short(unk)}")
        start = p.mark()
        p.send("this is not json")
        _, _, perr = p.wait_for(lambda o: o.get("type") == "response", start, 5)
        print(f"  non-JSON line -> {short(perr)}")
        p.request({"type": "new_session"})
        p.request({"type": "set_model", "provider": "fake", "modelId": "fake-fail"})
        settings_path.write_text(settings_before)  # set_model rewrote defaultModel
        resp, end, ts, tr, te, s = run_prompt(p, "Fail please (rpc-probe-fail)")
        af = last_assistant(end["messages"]) if end else None
        print(f"  LLM 429: prompt response {short(resp)}; agent_end after {(te - ts) * 1000:.0f} ms; "
              f"stopReason={af and af.get('stopReason')} errorMessage={af and af.get('errorMessage')!r}")
        check(bool(af) and af.get("stopReason") == "error" and "429" in af.get("errorMessage", ""),
              "an LLM error ends with agent_end whose assistant has stopReason error + errorMessage")
        check(sum(1 for r in server.requests() if r["prompt"] == "Fail please (rpc-probe-fail)") == 1,
              "exactly one LLM request for the failing prompt (retries off)")
        ends_after = [e for e in p.events(s) if e.get("type") == "agent_end"]
        check(len(ends_after) == 1, "one agent_end for the failing prompt")
        # prompt while streaming
        p.request({"type": "new_session"})
        start = p.mark()
        slow_id = p.send({"type": "prompt", "message": "Slow one SLOW:1500 (rpc-probe-busy)"})
        p.wait_for(lambda o: o.get("type") == "agent_start", start, 10)
        busy = p.request({"type": "prompt", "message": "Second while busy"})
        print(f"  prompt while streaming -> {short(busy)}")
        check(bool(busy) and busy.get("success") is False, "a prompt while streaming is rejected (success false)")
        stb = p.request({"type": "get_state"})
        print(f"  get_state while streaming: isStreaming={stb['data'].get('isStreaming')}")
        t_ab = p.now()
        ab = p.request({"type": "abort"})
        t_ab_resp = p.now()
        _, t_end, end = p.wait_agent_end(start, 10)
        aa = last_assistant(end["messages"]) if end else None
        print(f"  abort during a SLOW call: response {short(ab)} after {(t_ab_resp - t_ab) * 1000:.0f} ms, "
              f"agent_end at +{((t_end or 0) - t_ab) * 1000:.0f} ms, stopReason={aa and aa.get('stopReason')} "
              f"errorMessage={aa and aa.get('errorMessage')!r}")
        check(bool(aa) and aa.get("stopReason") == "aborted", "abort ends the prompt with stopReason aborted")
        idle_abort = p.request({"type": "abort"})
        print(f"  abort while idle -> {short(idle_abort)}")

        # ------------------------------------------------------------------
        print("\n[4] hung model call: abort in-process, then retry (HANG_ONCE)")
        p.request({"type": "new_session"})
        start = p.mark()
        p.send({"type": "prompt", "message": "Do it HANG_ONCE:probe1 (rpc-probe-hang)"})
        server.wait_request(lambda r: "HANG_ONCE:probe1" in r["prompt"])
        time.sleep(0.5)
        seen = [e.get("type") + ("/" + e["message"].get("role") if "message" in e and isinstance(e["message"], dict) else "")
                for e in p.events(start)]
        print(f"  events while the model call hangs: {seen}")
        check("message_start/assistant" not in seen,
              "during a hung call nothing follows the user message_end (assistant message_start waits for the HTTP response)")
        st_h = p.request({"type": "get_state"})
        t_ab = p.now()
        ab = p.request({"type": "abort"})
        t_ab_resp = p.now()
        _, t_end, end = p.wait_agent_end(start, 10)
        ah = last_assistant(end["messages"]) if end else None
        print(f"  hung call: isStreaming={st_h['data']['isStreaming']}; abort response after "
              f"{(t_ab_resp - t_ab) * 1000:.0f} ms, agent_end at +{((t_end or 0) - t_ab) * 1000:.0f} ms, "
              f"stopReason={ah and ah.get('stopReason')}")
        check(bool(ah) and ah.get("stopReason") == "aborted", "abort ends a hung model call (stopReason aborted)")
        p.request({"type": "new_session"})
        resp, end, ts, tr, te, _ = run_prompt(p, "Do it HANG_ONCE:probe1 (rpc-probe-hang)")
        ar = last_assistant(end["messages"]) if end else None
        print(f"  retry after abort: stopReason={ar and ar.get('stopReason')} in {(te - ts) * 1000:.0f} ms")
        check(bool(ar) and ar.get("stopReason") == "stop", "the retried prompt succeeds in the same process")

        # ------------------------------------------------------------------
        print("\n[5] tool call in rpc mode")
        p.request({"type": "new_session"})
        resp, end, ts, tr, te, s = run_prompt(p, "Please USE_TOOL now (rpc-probe-tool)")
        tends = [e for e in p.events(s) if e.get("type") == "tool_execution_end"]
        at = last_assistant(end["messages"]) if end else None
        print(f"  tool_execution_end: {short(tends[0]) if tends else None}")
        check(bool(tends) and not tends[0]["isError"] and "hello-from-tool" in text_of(at),
              "USE_TOOL runs bash and the answer quotes its output")
        stats = p.request({"type": "get_session_stats"})
        print(f"  get_session_stats after the tool prompt: tokens={stats['data']['tokens']} "
              f"assistantMessages={stats['data']['assistantMessages']} toolCalls={stats['data']['toolCalls']}")
        check(stats["data"]["tokens"]["input"] == 200 and stats["data"]["tokens"]["output"] == 20,
              "get_session_stats sums usage of the current session only (2 calls -> 200/20)")

        # ------------------------------------------------------------------
        print("\n[6] new_session sent right after a prompt, without waiting")
        p.request({"type": "new_session"})
        start = p.mark()
        p.send({"type": "prompt", "message": "Racing prompt SLOW:800 (rpc-probe-race)"})
        nsr = p.send({"type": "new_session"})
        _, t_nsr, nsr_resp = p.wait_for(lambda o: o.get("type") == "response" and o.get("id") == nsr, start, 15)
        _, _, end = p.wait_agent_end(start, 2.5)
        got = server.wait_request(lambda r: "rpc-probe-race" in r["prompt"], 2)
        print(f"  the racing prompt's LLM request reached the server: {got is not None}")
        check(end is None, "KNOWN HAZARD: new_session during a running prompt swallows that prompt's events (no agent_end ever)")
        print(f"  new_session during a running prompt -> {short(nsr_resp)}; "
              f"agent_end seen: {end is not None}"
              + (f" stopReason={last_assistant(end['messages']).get('stopReason')}" if end and last_assistant(end['messages']) else ""))
        sr = p.request({"type": "get_state"})
        print(f"  afterwards: isStreaming={sr['data']['isStreaming']} messageCount={sr['data']['messageCount']}")
        print("  types after the racing prompt: "
              f"{[e.get('type') for e in p.events(start) if e.get('type') not in ('message_update',)]}")

        rc, dt = p.close_stdin_and_wait()
        print(f"\n[7] stdin closed while idle: exit code {rc} after {dt * 1000:.0f} ms")
        check(rc == 0, "closing stdin while idle exits 0")

        # ------------------------------------------------------------------
        print("\n[8] stdin closed while a prompt is running")
        q = Pi("eof", pi_bin, ["--model", "fake/fake-model", *flags], env, work)
        procs.append(q)
        start = q.mark()
        q.send({"type": "prompt", "message": "Long one SLOW:3000 (rpc-probe-eof)"})
        server.wait_request(lambda r: "rpc-probe-eof" in r["prompt"])
        time.sleep(0.2)
        rc, dt = q.close_stdin_and_wait(10)
        kinds = [e.get("type") for e in q.events(start)]
        print(f"  exit code {rc} after {dt * 1000:.0f} ms; agent_end emitted: {'agent_end' in kinds}; last event: {kinds[-1] if kinds else None}")
        check(rc == 0 and dt < 2.0, "closing stdin during a model call exits 0 at once, without waiting for the call")

        print("\n[9] SIGTERM while a hung model call runs")
        h = Pi("term", pi_bin, ["--model", "fake/fake-hang", *flags], env, work)
        procs.append(h)
        start = h.mark()
        h.send({"type": "prompt", "message": "hang forever (rpc-probe-term)"})
        server.wait_request(lambda r: "rpc-probe-term" in r["prompt"])
        time.sleep(0.3)
        t = time.monotonic()
        h.proc.send_signal(signal.SIGTERM)
        try:
            rc = h.proc.wait(10)
        except subprocess.TimeoutExpired:
            rc = None
        print(f"  exit code {rc} after {(time.monotonic() - t) * 1000:.0f} ms; agent_end emitted: "
              f"{any(e.get('type') == 'agent_end' for e in h.events(start))}")
        check(rc == 143, "SIGTERM exits 143 in rpc mode")

        print("\n[10] recommended invocation: --session-dir DIR instead of --no-session, no --model")
        sdir = tmp / "rpc-sessions"
        b = Pi("sdir", pi_bin, [*flags], env, work, session_args=("--session-dir", str(sdir)))
        procs.append(b)
        before_cwd = set(work.iterdir())
        r1, e1, *_ = run_prompt(b, "Task one (rpc-probe-sdir-1)")
        b.request({"type": "new_session"})
        sm = b.request({"type": "set_model", "provider": "fake", "modelId": "fake-second"})
        r2, e2, *_ = run_prompt(b, "Task two (rpc-probe-sdir-2)")
        b.request({"type": "new_session"})
        st = b.request({"type": "get_state"})
        new_in_cwd = sorted(x.name for x in set(work.iterdir()) - before_cwd)
        in_sdir = sorted(x.name for x in sdir.rglob("*.jsonl")) if sdir.exists() else []
        rq = [r for r in server.requests() if "rpc-probe-sdir" in r["prompt"]]
        print(f"  models used: {[r['model'] for r in rq]}; roles of task two: {rq[-1]['roles'] if rq else None}")
        print(f"  new files in cwd: {new_in_cwd}; session files in --session-dir: {len(in_sdir)}")
        print(f"  model after new_session (no --model; settings.json defaultModel was rewritten by set_model): "
              f"{st['data']['model']['id']}; sessionFile={st['data'].get('sessionFile')}")
        check(not new_in_cwd, "with --session-dir (and no --no-session) nothing is written into the cwd")
        check(bool(rq) and rq[-1]["roles"] == ["system", "user"], "new_session gives a fresh conversation here too")
        check(bool(rq) and rq[0]["model"] == "fake-model", "without --model the settings.json default model is used")
        settings_path.write_text(settings_before)

        print("\n[10b] another cwd without a restart: switch_session to a header-only session file")
        other = tmp / "other-worktree"
        other.mkdir()
        hdr = sdir / "switch-target.jsonl"
        hdr.write_text(json.dumps({"type": "session", "version": 3, "id": "crew-probe-switch-1",
                                   "timestamp": "2026-01-01T00:00:00.000Z", "cwd": str(other)}) + "\n")
        sw = b.request({"type": "switch_session", "sessionPath": str(hdr)})
        print(f"  switch_session -> {short(sw)}")
        stw = b.request({"type": "get_state"})
        print(f"  get_state: messageCount={stw['data']['messageCount']} sessionFile={stw['data'].get('sessionFile')} "
              f"model={stw['data']['model']['id']}")
        rs, es, ts, tr, te, s0 = run_prompt(b, "Where am I USE_TOOL_PWD (rpc-probe-cwd)")
        tends = [e for e in b.events(s0) if e.get("type") == "tool_execution_end"]
        pwd = text_of(tends[0]["result"]) .strip() if tends else None
        rcwd = [r for r in server.requests() if "rpc-probe-cwd" in r["prompt"]]
        sys_cwd = rcwd[0]["system"].rsplit("Current working directory: ", 1)[-1] if rcwd else None
        print(f"  bash tool pwd: {pwd}; system prompt cwd: {sys_cwd}; roles {rcwd[0]['roles'] if rcwd else None}")
        check(pwd == str(other) and sys_cwd == str(other),
              "switch_session to a header whose cwd is another dir moves tools and system prompt there")
        b.request({"type": "new_session"})
        rs, es, ts, tr, te, s0 = run_prompt(b, "And now USE_TOOL_PWD (rpc-probe-cwd2)")
        tends = [e for e in b.events(s0) if e.get("type") == "tool_execution_end"]
        pwd2 = text_of(tends[0]["result"]).strip() if tends else None
        print(f"  after a further new_session the bash tool runs in: {pwd2}")
        print(f"  files in the other dir: {sorted(x.name for x in other.iterdir())}; "
              f"header file now {len(hdr.read_text().splitlines())} lines")
        b.close_stdin_and_wait()
        settings_path.write_text(settings_before)

        print("\n[11] timings: spawn -> first prompt done, then new_session + second prompt (3 runs)")
        for i in range(3):
            s = Pi(f"time{i}", pi_bin, ["--model", "fake/fake-model", *flags], env, work)
            procs.append(s)
            resp, end, ts, tr, te, _ = run_prompt(s, f"Timing {i} (rpc-probe-timing)")
            t_ns = s.now()
            s.request({"type": "new_session"})
            t_ns2 = s.now()
            resp, end2, ts2, tr2, te2, _ = run_prompt(s, f"Timing {i}b (rpc-probe-timing)")
            print(f"  run {i}: first prompt response {tr:.3f}s / agent_end {te:.3f}s after spawn; "
                  f"new_session {(t_ns2 - t_ns) * 1000:.1f} ms; second prompt agent_end {(te2 - ts2) * 1000:.1f} ms after send")
            s.close_stdin_and_wait()

        print("\nstderr of the pi processes:")
        for x in procs:
            err = x.stderr_path.read_text(errors="replace").strip()
            print(f"  {x.label}: {err[:400]!r}")
    finally:
        for x in procs:
            x.kill()
        server.stop()
        if args.transcript:
            with open(args.transcript, "w") as f:
                for entry in transcript:
                    f.write(json.dumps(entry) + "\n")
        if args.keep:
            print(f"kept {tmp}")
        else:
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)

    print(f"\n{'ALL FACTS HOLD' if not failures else 'FAILED: ' + '; '.join(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
