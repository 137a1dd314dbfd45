"""POST a whole request body before reading the answer, as Python's http.client (and so
urllib and requests) does, then print the answer as JSON: {"status": N, "body": "..."} or
{"error": "..."} when the connection broke first.

usage: write_then_read.py URL SIZE [--chunked] [--method M] [--header NAME:VALUE]...
"""
import argparse
import http.client
import json
import sys
import urllib.parse

p = argparse.ArgumentParser()
p.add_argument("url")
p.add_argument("size", type=int)
p.add_argument("--chunked", action="store_true")
p.add_argument("--method", default="POST")
p.add_argument("--header", action="append", default=[])
a = p.parse_args()

u = urllib.parse.urlsplit(a.url)
headers = {"ce-specversion": "1.0", "ce-id": "big", "ce-source": "/py", "ce-type": "big",
           "content-type": "application/octet-stream"}
for h in a.header:
    k, _, v = h.partition(":")
    headers[k.strip()] = v.strip()
body = b"x" * a.size
try:
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    if a.chunked:
        def chunks():
            for i in range(0, len(body), 65536):
                yield body[i:i + 65536]
        c.request(a.method, u.path or "/", body=chunks(), headers=headers, encode_chunked=True)
    else:
        c.request(a.method, u.path or "/", body=body, headers=headers)
    r = c.getresponse()
    out = {"status": r.status, "body": r.read().decode("utf-8", "replace")}
except Exception as e:  # the point of the test: the connection must not break first
    out = {"error": f"{type(e).__name__}: {e}"}
json.dump(out, sys.stdout)
