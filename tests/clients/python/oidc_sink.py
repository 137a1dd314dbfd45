"""An event sink that verifies the OIDC token of every request with PyJWT against an
issuer's JWKS, as a Knative subscriber would.

usage: oidc_sink.py ISSUER AUDIENCE
Fetches ISSUER/.well-known/openid-configuration and the JWKS it names (PyJWKClient), listens
on 127.0.0.1 (a free port), prints "port N" first, then for every request either
"ok ID SUB" (a valid ES256 token for AUDIENCE from ISSUER; answered 202) or
"refused ID REASON" (answered 401). Exits when its parent process goes away.
"""
import json
import os
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt

PARENT = os.getppid()
ISSUER, AUDIENCE = sys.argv[1].rstrip("/"), sys.argv[2]
with urllib.request.urlopen(ISSUER + "/.well-known/openid-configuration", timeout=30) as r:
    DISCOVERY = json.load(r)
JWKS = jwt.PyJWKClient(DISCOVERY["jwks_uri"])


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        event_id = self.headers.get("ce-id", "")
        auth = self.headers.get("Authorization", "")
        try:
            if not auth.startswith("Bearer "):
                raise ValueError("no bearer token")
            token = auth[len("Bearer "):]
            key = JWKS.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                key.key,
                algorithms=["ES256"],
                audience=AUDIENCE,
                issuer=DISCOVERY["issuer"],
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            )
            print("ok", event_id, claims["sub"], flush=True)
            status = 202
        except Exception as e:  # any failure is a refusal, with its reason
            print("refused", event_id, type(e).__name__, str(e).replace("\n", " "), flush=True)
            status = 401
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def watch_parent():
    while os.getppid() == PARENT:
        time.sleep(0.5)
    os._exit(0)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=watch_parent, daemon=True).start()
    print("port", server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
