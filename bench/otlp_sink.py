#!/usr/bin/env python3
"""A minimal OTLP/HTTP receiver on 127.0.0.1 for benchmarks: accepts
POST /v1/metrics, counts bodies, answers 200. Prints its port, then serves
until killed."""
import http.server
import signal
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    bodies = 0

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        self.rfile.read(length)
        Handler.bodies += 1
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
try:
    server.serve_forever()
except KeyboardInterrupt:
    pass
print(f"bodies received: {Handler.bodies}", file=sys.stderr)
