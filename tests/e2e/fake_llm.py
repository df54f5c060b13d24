#!/usr/bin/env python3
"""Fake OpenAI-compatible LLM server for crew's end-to-end tests with the real pi CLI.

Usage: fake_llm.py [--port 0] [--log FILE]

Prints ``PORT <n>`` as its first stdout line, then serves until SIGTERM/SIGINT
(clean exit 0). Binds 127.0.0.1 only. Standard library only (Python >= 3.11).

Route: ``POST /v1/chat/completions`` (also ``/chat/completions``), streaming
(SSE ``data:`` lines ending with ``data: [DONE]``) or not (``"stream": false``).
``GET /v1/models`` lists the models seen so far (for curiosity only).

Behaviour is decided per request, statelessly except for HANG_ONCE, from the
model id and the text of the last ``user`` message ("the prompt"). Checked in
this order:

  model id contains "hang"  -> never answers (no status line), unless the prompt
                               contains NOHANG; the handler sleeps until the
                               client disconnects or the server stops
  model id contains "fail"  -> HTTP 429 {"error":{"message":"rate limit exceeded"}}
  HANG_ONCE:<tag>           -> the first request carrying <tag> hangs like above;
                               every later request with the same tag is answered
                               normally (tests "watchdog kills a hung call, retry
                               succeeds"). Tags are remembered for the server's life.
  SLOW:<ms>                 -> sleeps <ms> milliseconds, then goes on below
  FAIL_500                  -> HTTP 500 {"error":{"message":"fake upstream failure"}}
  STALL                     -> sends 200 and the first text chunk, then hangs
                               (a stream that stalls mid-answer)
  last message role "tool"  -> text answer "Tool said: <tool output>"
  USE_TOOL_PWD              -> tool call: bash {"command": "pwd"} (shows the tool's cwd)
  USE_TOOL                  -> tool call: bash {"command": "echo hello-from-tool"}
  otherwise                 -> text answer naming the model:
                               "Hello from <model>. user_messages=<n>."

Every answer carries usage prompt_tokens=100, completion_tokens=10
(total_tokens=110), so pi reports usage input 100 / output 10 per call.

--log FILE appends one JSON line per request, written when the request arrives:
{"ts", "model", "prompt" (last user text), "last_role", "n_messages",
 "roles", "user_messages", "stream", "behaviour", "system" (the system/developer
 prompt text, so tests can check what pi put into it)}.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import select
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PROMPT_TOKENS = 100
COMPLETION_TOKENS = 10
TOOL_COMMAND = "echo hello-from-tool"

_stop = threading.Event()
_lock = threading.Lock()
_seen_hang_tags: set[str] = set()
_models_seen: set[str] = set()
_call_ids = itertools.count(1)
_log_file = None


def _text_of(content) -> str:
    """Text of an OpenAI message content (string or array of parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                parts.append(str(part.get("text", "")))
            elif isinstance(part, str):
                parts.append(part)
        return "".join(parts)
    return str(content)


def _log(entry: dict) -> None:
    if _log_file is None:
        return
    line = json.dumps(entry, ensure_ascii=False)
    with _lock:
        _log_file.write(line + "\n")
        _log_file.flush()


def _decide(model: str, prompt: str, last_role: str) -> tuple[str, int]:
    """Returns (behaviour, slow_ms)."""
    slow_ms = 0
    m = re.search(r"SLOW:(\d+)", prompt)
    if m:
        slow_ms = int(m.group(1))
    if "hang" in model and "NOHANG" not in prompt:
        return "hang", 0
    if "fail" in model:
        return "rate_limit", 0
    m = re.search(r"HANG_ONCE:([A-Za-z0-9_.\-]+)", prompt)
    if m:
        tag = m.group(1)
        with _lock:
            first = tag not in _seen_hang_tags
            _seen_hang_tags.add(tag)
        if first:
            return "hang", 0
    if "FAIL_500" in prompt:
        return "error_500", slow_ms
    if "STALL" in prompt:
        return "stall", slow_ms
    if last_role == "tool":
        return "tool_answer", slow_ms
    if "USE_TOOL_PWD" in prompt:
        return "tool_call_pwd", slow_ms
    if "USE_TOOL" in prompt:
        return "tool_call", slow_ms
    return "text", slow_ms


class Handler(BaseHTTPRequestHandler):
    server_version = "fake-llm/1"
    # HTTP/1.0: one request per connection, the body of a stream ends at close.

    def log_message(self, fmt, *args):  # keep stderr quiet
        pass

    # ---- helpers -------------------------------------------------------
    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0] or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send_json(self, status: int, obj) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _sleep(self, seconds: float) -> bool:
        """Sleeps; returns False when the client went away or the server stops."""
        deadline = time.monotonic() + seconds
        while not _stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            if not self._client_alive(min(left, 0.2)):
                return False
        return False

    def _client_alive(self, wait: float) -> bool:
        try:
            r, _, _ = select.select([self.connection], [], [], wait)
            if r:
                data = self.connection.recv(1, 0x2)  # MSG_PEEK
                return bool(data)
        except OSError:
            return False
        return True

    def _hang(self) -> None:
        while not _stop.is_set() and self._client_alive(0.2):
            pass
        self.close_connection = True

    def _chunk(self, model: str, delta: dict | None, finish=None, usage=None) -> dict:
        obj = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [] if delta is None else [
                {"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if usage is not None:
            obj["usage"] = usage
        return obj

    def _sse(self, obj) -> None:
        payload = obj if isinstance(obj, str) else json.dumps(obj)
        self.wfile.write(f"data: {payload}\n\n".encode())
        self.wfile.flush()

    # ---- routes --------------------------------------------------------
    def do_GET(self):
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            with _lock:
                data = [{"id": m, "object": "model"} for m in sorted(_models_seen)]
            self._send_json(200, {"object": "list", "data": data})
        else:
            self._send_json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self):
        path = self.path.split("?")[0].rstrip("/")
        if path not in ("/v1/chat/completions", "/chat/completions"):
            self._read_body()
            self._send_json(404, {"error": {"message": f"no route {self.path}"}})
            return
        try:
            req = json.loads(self._read_body() or b"{}")
        except json.JSONDecodeError as e:
            self._send_json(400, {"error": {"message": f"bad json: {e}"}})
            return

        model = str(req.get("model", ""))
        messages = req.get("messages") or []
        stream = bool(req.get("stream", False))
        roles = [m.get("role", "") for m in messages if isinstance(m, dict)]
        last_role = roles[-1] if roles else ""
        user_msgs = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        prompt = _text_of(user_msgs[-1].get("content")) if user_msgs else ""
        system = "".join(_text_of(m.get("content")) for m in messages
                         if isinstance(m, dict) and m.get("role") in ("system", "developer"))
        with _lock:
            _models_seen.add(model)

        behaviour, slow_ms = _decide(model, prompt, last_role)
        _log({
            "ts": time.time(),
            "model": model,
            "prompt": prompt,
            "last_role": last_role,
            "n_messages": len(messages),
            "roles": roles,
            "user_messages": len(user_msgs),
            "stream": stream,
            "behaviour": behaviour,
            "system": system,
        })

        if behaviour == "hang":
            self._hang()
            return
        if behaviour == "rate_limit":
            self._send_json(429, {"error": {"message": "rate limit exceeded",
                                            "type": "rate_limit_error"}})
            return
        if slow_ms and not self._sleep(slow_ms / 1000.0):
            self.close_connection = True
            return
        if behaviour == "error_500":
            self._send_json(500, {"error": {"message": "fake upstream failure",
                                            "type": "server_error"}})
            return

        usage = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS,
                 "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS}
        text = None
        tool_call = None
        if behaviour == "tool_answer":
            tool_out = _text_of(messages[-1].get("content")).strip()
            text = f"Tool said: {tool_out}"
        elif behaviour in ("tool_call", "tool_call_pwd"):
            cmd = "pwd" if behaviour == "tool_call_pwd" else TOOL_COMMAND
            tool_call = {"id": f"call_{next(_call_ids)}", "name": "bash",
                         "arguments": json.dumps({"command": cmd})}
        elif behaviour == "stall":
            text = "This answer stalls"
        else:
            text = f"Hello from {model}. user_messages={len(user_msgs)}."

        if not stream:
            msg: dict = {"role": "assistant", "content": text}
            finish = "stop"
            if tool_call:
                msg = {"role": "assistant", "content": None, "tool_calls": [{
                    "id": tool_call["id"], "type": "function",
                    "function": {"name": tool_call["name"],
                                 "arguments": tool_call["arguments"]}}]}
                finish = "tool_calls"
            self._send_json(200, {
                "id": "chatcmpl-fake", "object": "chat.completion",
                "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "message": msg, "finish_reason": finish}],
                "usage": usage})
            return

        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            if behaviour == "stall":
                self._sse(self._chunk(model, {"role": "assistant", "content": text}))
                self._hang()
                return
            if tool_call:
                self._sse(self._chunk(model, {"role": "assistant", "content": None, "tool_calls": [{
                    "index": 0, "id": tool_call["id"], "type": "function",
                    "function": {"name": tool_call["name"], "arguments": ""}}]}))
                args = tool_call["arguments"]
                half = len(args) // 2
                for frag in (args[:half], args[half:]):
                    self._sse(self._chunk(model, {"tool_calls": [
                        {"index": 0, "function": {"arguments": frag}}]}))
                self._sse(self._chunk(model, {}, finish="tool_calls"))
            else:
                words = text.split(" ")
                pieces = [" ".join(words[:2]) + " ", " ".join(words[2:])] if len(words) > 2 else [text]
                first = True
                for piece in pieces:
                    delta = {"content": piece}
                    if first:
                        delta["role"] = "assistant"
                        first = False
                    self._sse(self._chunk(model, delta))
                self._sse(self._chunk(model, {}, finish="stop"))
            self._sse(self._chunk(model, None, usage=usage))
            self._sse("[DONE]")
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main() -> int:
    global _log_file
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--log", default=None)
    args = ap.parse_args()
    if args.log:
        _log_file = open(args.log, "a", encoding="utf-8")

    server = Server(("127.0.0.1", args.port), Handler)
    print(f"PORT {server.server_address[1]}", flush=True)

    def on_signal(signum, frame):
        _stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    t.start()
    while not _stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    if _log_file:
        _log_file.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
