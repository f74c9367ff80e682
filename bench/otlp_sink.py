#!/usr/bin/env python3
"""A stand-in OTLP/HTTP trace collector for the benchmark: accepts POST /v1/traces, answers 200
with an empty ExportTraceServiceResponse, and counts requests and bytes (printed on SIGTERM and
every 5 s to stdout). It does not decode the spans; the gateway's tests do that.

    python3 bench/otlp_sink.py 127.0.0.1 18085
"""
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
stats = {"requests": 0, "bytes": 0}


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with lock:
            stats["requests"] += 1
            stats["bytes"] += len(body)
        self.send_response(200 if self.path == "/v1/traces" else 404)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def report():
    with lock:
        print(f"otlp_sink requests={stats['requests']} bytes={stats['bytes']}", flush=True)


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    server = ThreadingHTTPServer((host, port), Sink)
    signal.signal(signal.SIGTERM, lambda *_: (report(), sys.exit(0)))

    def tick():
        while True:
            time.sleep(5)
            report()

    threading.Thread(target=tick, daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
