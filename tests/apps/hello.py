#!/usr/bin/env python3
"""A stand-in for Knative's helloworld images: an HTTP/1.1 server on $PORT.

GET /            -> "Hello <TARGET>!" (TARGET from the environment, default "World")
GET /sleep?ms=N  -> waits N ms first (for concurrency and autoscaling tests)
POST /           -> answers 202 and prints "event <ce-id> <ce-type> <path>" on stdout (events
                    sent to a Knative Service by eventing); with REPLY_TYPE set, answers 200
                    with a binary-mode reply event of that type, id "reply-<ce-id>"
Headers X-Revision and X-Pid name who answered. The server exits when its parent process goes
away, so a killed test leaves nothing behind.
"""
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

PARENT = os.getppid()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Revision", os.environ.get("K_REVISION", ""))
        self.send_header("X-Pid", str(os.getpid()))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/sleep":
            ms = int(parse_qs(url.query).get("ms", ["0"])[0])
            time.sleep(ms / 1000.0)
        self._answer(200, "Hello %s!\n" % os.environ.get("TARGET", "World"))

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0") or 0)
        self.rfile.read(n)
        event_id = self.headers.get("ce-id")
        print("event %s %s %s" % (event_id, self.headers.get("ce-type"), self.path), flush=True)
        reply_type = os.environ.get("REPLY_TYPE")
        if not reply_type:
            self._answer(202, "")
            return
        data = b'{"from": "hello"}'
        self.send_response(200)
        self.send_header("Ce-Specversion", "1.0")
        self.send_header("Ce-Id", "reply-%s" % event_id)
        self.send_header("Ce-Type", reply_type)
        self.send_header("Ce-Source", "/apps/hello/%s" % os.environ.get("K_REVISION", ""))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def watchdog():
    while True:
        if os.getppid() != PARENT:
            os._exit(0)
        time.sleep(0.2)


def main():
    port = int(os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=watchdog, daemon=True).start()
    print("listening on %d" % port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
