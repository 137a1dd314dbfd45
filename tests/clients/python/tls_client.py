"""A client of Knit's HTTPS listeners with Python's standard library only (`ssl` and
`http.client`), verifying the server against a CA file.

usage:
  tls_client.py post URL CAFILE ID         POST a binary-mode CloudEvent; prints the status
  tls_client.py get URL CAFILE             GET; prints the status, then the body
  tls_client.py peer URL CAFILE            prints the server certificate's serial (decimal)
                                           and subject CN, or "refused: REASON" and exits 1
  tls_client.py stream URL CAFILE SERIAL SECONDS
                                           POST events one after another (ids stream-N), a
                                           new connection every 5, until SERIAL was served
                                           on one connection and 20 more events went through
                                           it (or SECONDS passed); prints a JSON summary:
                                           {"sent": [ids answered 202], "failed": [...],
                                            "serials": [serial of each connection]}
A URL's host is verified as given; names under `localhost` are connected to on 127.0.0.1
(the system resolver may not know them).
"""
import http.client
import json
import socket
import ssl
import sys
import time
from urllib.parse import urlsplit


class Connection(http.client.HTTPSConnection):
    """An HTTPS connection that dials names under `localhost` on loopback, keeping the name
    for SNI and verification."""

    def connect(self):
        host = self.host
        dial = "127.0.0.1" if host == "localhost" or host.endswith(".localhost") else host
        sock = socket.create_connection((dial, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=host)


def connect(url, cafile):
    parts = urlsplit(url)
    context = ssl.create_default_context(cafile=cafile)
    conn = Connection(parts.hostname, parts.port or 443, context=context, timeout=30)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return conn, path


def peer(conn):
    cert = conn.sock.getpeercert()
    cn = [v for rdn in cert["subject"] for (k, v) in rdn if k == "commonName"]
    return int(cert["serialNumber"], 16), cn[0] if cn else ""


def post_event(conn, path, id_):
    headers = {
        "ce-specversion": "1.0",
        "ce-id": id_,
        "ce-type": "com.example.tls",
        "ce-source": "/python",
        "content-type": "application/json",
    }
    conn.request("POST", path, body=b'{"via": "python ssl"}', headers=headers)
    response = conn.getresponse()
    response.read()
    return response.status


def reason(error):
    return getattr(error, "verify_message", None) or getattr(error, "reason", None) or str(error)


def stream(url, cafile, serial, seconds):
    new_serial, sent, failed, serials = int(serial), [], [], []
    deadline, after = time.time() + float(seconds), None
    n = 0
    while time.time() < deadline and (after is None or after > 0):
        conn, path = connect(url, cafile)
        try:
            conn.connect()
            served = peer(conn)[0]
            serials.append(served)
            for _ in range(5):
                id_ = f"stream-{n}"
                n += 1
                try:
                    status = post_event(conn, path, id_)
                except (OSError, http.client.HTTPException) as e:
                    failed.append(f"{id_}: {e}")
                    break
                (sent if status == 202 else failed).append(id_ if status == 202 else f"{id_}: {status}")
                if after is None and served == new_serial:
                    after = 20
                if after is not None:
                    after -= 1
        except (OSError, ssl.SSLError) as e:
            failed.append(f"connect: {reason(e)}")
        finally:
            conn.close()
    print(json.dumps({"sent": sent, "failed": failed, "serials": serials}))
    return 0


def main():
    command, url, cafile = sys.argv[1:4]
    if command == "stream":
        return stream(url, cafile, *sys.argv[4:6])
    conn, path = connect(url, cafile)
    try:
        if command == "peer":
            conn.connect()
            serial, cn = peer(conn)
            print(serial, cn)
        elif command == "post":
            print(post_event(conn, path, sys.argv[4]))
        elif command == "get":
            conn.request("GET", path)
            response = conn.getresponse()
            print(response.status)
            print(response.read().decode(errors="replace"))
        else:
            print(f"unknown command {command}", file=sys.stderr)
            return 2
    except ssl.SSLError as e:
        print(f"refused: {reason(e)}")
        return 1
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
