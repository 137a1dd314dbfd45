"""A tiny HTTP app for the serving tests: listens on $PORT, exits when stdin closes (so it never
outlives the test), and answers:
  /            "<K_REVISION>"
  /headers     every header it received, one `name=value` a line (names lower case)
  /peer        the port of the connection it came on (the gateway's side)
  /chunked     a chunked body of three chunks, 20 ms apart
  /unframed    a body without length, ended by closing the connection
  POST /echo   the body (Content-Length or chunked) back
  /slow?ms=N   sleeps N ms, counting overlapping requests
  /stats       the most requests it ever handled at once
  /crash       exits with status 4
  /pause-accepts?ms=N  accepts no connection for N ms (the backlog, 5, fills and drops SYNs)
  /ws          with `Upgrade: echo`, switches protocols and echoes bytes
With CRASH set it prints CRASH to stderr and exits with status 3 at once."""
import os, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse, parse_qs

if os.environ.get("CRASH"):
    print(os.environ["CRASH"], file=sys.stderr, flush=True)
    sys.exit(3)

lock = threading.Lock()
current = 0
most = 0
accepts_paused_until = 0.0

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, body):
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        global current, most, accepts_paused_until
        url = urlparse(self.path)
        if url.path == "/headers":
            self.reply("\n".join(f"{k.lower()}={v}" for k, v in self.headers.items()))
        elif url.path == "/peer":
            self.reply(str(self.client_address[1]))
        elif url.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in [b"one ", b"two ", b"three"]:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.flush()
                time.sleep(0.02)
            self.wfile.write(b"0\r\n\r\n")
        elif url.path == "/unframed":
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"until close")
            self.close_connection = True
        elif url.path == "/slow":
            ms = int(parse_qs(url.query).get("ms", ["100"])[0])
            with lock:
                current += 1
                most = max(most, current)
            print(f"slow {ms} ms", flush=True)
            time.sleep(ms / 1000)
            with lock:
                current -= 1
            self.reply("slept")
        elif url.path == "/stats":
            self.reply(str(most))
        elif url.path == "/ws" and self.headers.get("Upgrade") == "echo":
            self.send_response(101)
            self.send_header("Upgrade", "echo")
            self.send_header("Connection", "Upgrade")
            self.end_headers()
            self.wfile.flush()
            while True:
                data = self.connection.recv(1024)
                if not data:
                    break
                self.connection.sendall(data)
            self.close_connection = True
        elif url.path == "/crash":
            os._exit(4)
        elif url.path == "/pause-accepts":
            ms = int(parse_qs(url.query).get("ms", ["1000"])[0])
            accepts_paused_until = time.monotonic() + ms / 1000
            self.reply("paused")
        else:
            self.reply(os.environ.get("K_REVISION", ""))

    def do_POST(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b""):
                        pass
                    break
                data += self.rfile.read(size)
                self.rfile.readline()
        else:
            data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

def watch_stdin():
    sys.stdin.read()
    os._exit(0)

threading.Thread(target=watch_stdin, daemon=True).start()
class Server(ThreadingHTTPServer):
    def get_request(self):
        delay = accepts_paused_until - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        return super().get_request()

server = Server(("127.0.0.1", int(os.environ["PORT"])), H)
server.daemon_threads = True
print(f"listening on {os.environ['PORT']} as {os.environ.get('K_SERVICE')}/{os.environ.get('K_REVISION')} arg={sys.argv[1:]}", flush=True)
server.serve_forever()
