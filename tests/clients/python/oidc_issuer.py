"""A test OIDC issuer: serves its discovery document and JWKS (RS256 keys) over HTTP and mints
tokens with PyJWT, as a Kubernetes cluster's service-account issuer would.

usage: oidc_issuer.py
Listens on 127.0.0.1 (a free port) and prints "port N" first; its issuer URL is
http://127.0.0.1:N, its JWKS at /openid/v1/jwks (only the current key). Then reads commands
on stdin, one a line, and answers each with one line:
  mint AUD SUB EXP_IN_SECONDS [ISS]   a token signed by the current key (kid in the header)
  forge AUD SUB                       a token naming the current kid, signed by another key
  rotate                              a new current key (the old one leaves the JWKS): "kid K"
  fetches                             how many times the JWKS was fetched: "fetches N"
Exits when its parent process goes away or stdin closes.
"""
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

PARENT = os.getppid()
STATE = {"kid": None, "key": None, "fetches": 0}
LOCK = threading.Lock()


def new_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def rotate():
    with LOCK:
        n = 1 if STATE["kid"] is None else int(STATE["kid"].split("-")[1]) + 1
        STATE["kid"], STATE["key"] = f"key-{n}", new_key()
        return STATE["kid"]


def jwks():
    with LOCK:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(STATE["key"].public_key()))
        jwk.update({"kid": STATE["kid"], "use": "sig", "alg": "RS256"})
        STATE["fetches"] += 1
        return {"keys": [jwk]}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/.well-known/openid-configuration":
            body = {
                "issuer": ISSUER,
                "jwks_uri": ISSUER + "/openid/v1/jwks",
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
            }
        elif self.path == "/openid/v1/jwks":
            body = jwks()
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def mint(aud, sub, exp_in, iss=None, key=None):
    now = int(time.time())
    claims = {"iss": iss or ISSUER, "sub": sub, "aud": [aud], "iat": now, "nbf": now,
              "exp": now + int(exp_in)}
    with LOCK:
        kid, current = STATE["kid"], STATE["key"]
    return jwt.encode(claims, key or current, algorithm="RS256", headers={"kid": kid})


def watch_parent():
    while os.getppid() == PARENT:
        time.sleep(0.5)
    os._exit(0)


def main():
    global ISSUER
    rotate()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ISSUER = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    threading.Thread(target=watch_parent, daemon=True).start()
    print("port", server.server_address[1], flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "mint":
            print(mint(*words[1:]), flush=True)
        elif words[0] == "forge":
            print(mint(words[1], words[2], 600, key=new_key()), flush=True)
        elif words[0] == "rotate":
            print("kid", rotate(), flush=True)
        elif words[0] == "fetches":
            with LOCK:
                print("fetches", STATE["fetches"], flush=True)
        else:
            print("unknown command", words[0], flush=True)


if __name__ == "__main__":
    main()
