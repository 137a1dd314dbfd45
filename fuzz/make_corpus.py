#!/usr/bin/env python3
"""Rebuild the seed corpus under fuzz/corpus/<target>/ from the test data.

usage: fuzz/make_corpus.py [SHARED_DIR]   (default ../shared beside the checkout, or $KNIT_SHARED)

- cesql: every expression of the CloudEvents SQL TCK, plus overflow and range edges;
- yaml_admission: every Knative sample manifest, plus a few Knit-specific ones;
- json_event / http_binding: events written by the Python CloudEvents SDK (the one the
  black-box tests use, from the venv scripts/test installs, when present) and hand-made
  structured, binary and batch messages;
- durations: Retry-After values, ISO-8601 and Go durations.

The files are named after what they hold; rerunning replaces the corpus directories.
"""
import datetime
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent
REPO = ROOT.parent
SHARED = pathlib.Path(
    sys.argv[1] if len(sys.argv) > 1 else os.environ.get("KNIT_SHARED", REPO.parent / "shared")
)
VENV_PY = pathlib.Path.home() / ".cache/knit/venv/bin/python"


def slug(s, n=40):
    return re.sub(r"[^A-Za-z0-9]+", "-", s).strip("-")[:n] or "x"


class Corpus:
    def __init__(self, target):
        self.dir = ROOT / "corpus" / target
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        self.seen = set()

    def add(self, name, data):
        if isinstance(data, str):
            data = data.encode()
        if data in self.seen:
            return
        self.seen.add(data)
        path = self.dir / slug(name, 60)
        i = 1
        while path.exists():
            i += 1
            path = self.dir / f"{slug(name, 60)}-{i}"
        path.write_bytes(data)


def tck_expressions():
    """(file stem, case name, expression) of every TCK case, read with a tiny YAML subset
    reader (the TCK uses `expression:` scalars, plain or quoted)."""
    out = []
    for f in sorted((SHARED / "conformance/cesql-tck").glob("*.yaml")):
        name = None
        for line in f.read_text().splitlines():
            m = re.match(r"\s*- name:\s*(.*)", line)
            if m:
                name = m.group(1)
            m = re.match(r"\s*expression:\s*(.*)", line)
            if m:
                raw = m.group(1).strip()
                if raw.startswith('"') and raw.endswith('"'):
                    raw = json.loads(raw)
                elif raw.startswith("'") and raw.endswith("'"):
                    raw = raw[1:-1].replace("''", "'")
                out.append((f.stem, name or "", raw))
    return out


def cesql():
    c = Corpus("cesql")
    for stem, name, expr in tck_expressions():
        c.add(f"tck-{stem}-{name}", expr)
    for i, expr in enumerate([
        "2147483647 + 1",
        "-2147483648 - 1",
        "-2147483648",
        "-(-2147483648)",
        "- -2147483648",
        "2147483648",
        "-2147483649",
        "99999999999999999999999",
        "65536 * 65536",
        "-2147483648 / -1",
        "-2147483648 % -1",
        "1 / 0",
        "1 % 0",
        "ABS(-2147483648)",
        "INT('2147483648')",
        "INT('-2147483648')",
        "INT(' 12 ')",
        "INT(mybig)",
        "SUBSTRING('abc', 2147483647, 2147483647)",
        "SUBSTRING('abc', -2147483648)",
        "SUBSTRING('abc', -2147483648, -2147483648)",
        "SUBSTRING(myutf8, -1, 2147483647)",
        "LEFT('abc', 2147483647)",
        "RIGHT('abc', -2147483648)",
        "LENGTH(CONCAT_WS(myutf8, 'a', 'b', 'c'))",
        "myint - 1 < myint",
        "mystring + 0",
        "myutf8 LIKE '%\\%%' AND myutf8 NOT LIKE '_\\_'",
        "EXISTS mybool AND mybool IN (TRUE, 'true', 1)",
        "UPPER(LOWER('ÄéΩ')) = 'ÄÉΩ'",
    ]):
        c.add(f"edge-{i:02}-{expr}", expr)


def yaml_admission():
    c = Corpus("yaml_admission")
    for f in sorted((SHARED / "knative-samples").glob("*.y*ml")):
        c.add(f"sample-{f.stem[-50:]}", f.read_bytes())
    c.add("knit-trigger-filters", """\
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: t
  namespace: default
spec:
  broker: default
  filters:
    - cesql: "ABS(myint) > 2147483647 OR SUBSTRING(type, -2147483648) = ''"
    - any:
        - exact: {type: a}
        - prefix: {source: /s}
        - not: {suffix: {subject: x}}
  delivery:
    retry: 4294967295
    backoffPolicy: exponential
    backoffDelay: PT99999999999999999S
    backoffMax: P106751991167300DT15H30M7S
    retryAfterMax: PT0.000000001S
    timeout: PT1S
  subscriber:
    uri: http://localhost:9999/
""")
    c.add("knit-broker-and-channel", """\
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: default
  namespace: default
  annotations:
    eventing.knative.dev/broker.class: MTChannelBasedBroker
spec:
  delivery:
    retry: -1
    backoffDelay: "-PT1S"
---
apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata: {name: c, namespace: default}
---
apiVersion: sources.knative.dev/v1
kind: PingSource
metadata: {name: p, namespace: default}
spec:
  schedule: "*/1 * * * *"
  data: '{"x": 1}'
  sink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}
""")
    c.add("knit-json-document", '{"apiVersion": "serving.knative.dev/v1", "kind": "Service",'
          ' "metadata": {"name": "s", "annotations": {"autoscaling.knative.dev/window": "999999999h"}},'
          ' "spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}')


def sdk_events():
    """Structured and binary messages written by the Python SDK: [(name, headers, body)]."""
    if not VENV_PY.exists():
        print(f"note: {VENV_PY} missing (scripts/test installs it); SDK seeds skipped", file=sys.stderr)
        return []
    program = r"""
import base64, datetime, json, sys
from cloudevents.core.bindings.http import to_binary_event, to_structured_event
from cloudevents.core.v1.event import CloudEvent
t = datetime.datetime(2018, 4, 26, 14, 48, 9, 123456, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
cases = [
    ("json", {"id": "1", "type": "dev.knative.samples.helloworld", "source": "/me", "datacontenttype": "application/json"}, {"msg": "Hello, Knit!"}),
    ("text", {"id": "A234-1234-1234", "type": "com.example.someevent", "source": "https://example.com/a?b=c", "subject": "x/y", "time": t, "datacontenttype": "text/plain; charset=utf-8"}, "hello wörld"),
    ("bytes", {"id": "b", "type": "t", "source": "urn:x", "datacontenttype": "application/octet-stream"}, b"\x00\x01\xff"),
    ("ext", {"id": "e", "type": "t", "source": "/s", "knativebrokerttl": "255", "myint": 42, "mybool": True, "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}, None),
    ("schema", {"id": "s", "type": "t", "source": "/s", "dataschema": "https://example.com/schema.json", "datacontenttype": "application/vnd.example+json"}, [1, 2.5, None, "x"]),
]
out = []
for name, attrs, data in cases:
    attrs.setdefault("time", t)  # the SDK would stamp "now"; seeds stay reproducible
    ev = CloudEvent(attrs, data)
    for mode, fn in (("structured", to_structured_event), ("binary", to_binary_event)):
        try:
            m = fn(ev)
        except Exception as e:
            print(f"skip {name} {mode}: {e}", file=sys.stderr)
            continue
        out.append([f"sdk-py-{mode}-{name}", dict(m.headers), base64.b64encode(m.body).decode()])
print(json.dumps(out))
"""
    res = subprocess.run([str(VENV_PY), "-c", program], capture_output=True, text=True, check=True)
    if res.stderr:
        print(res.stderr, file=sys.stderr, end="")
    import base64
    return [(n, h, base64.b64decode(b)) for n, h, b in json.loads(res.stdout)]


HAND_STRUCTURED = [
    ("minimal", {"specversion": "1.0", "id": "1", "source": "/s", "type": "t"}),
    ("all-attributes", {"specversion": "1.0", "id": "1", "source": "https://example.com/", "type": "t",
                        "subject": "s", "time": "2020-01-02T03:04:05.678Z", "dataschema": "urn:schema",
                        "datacontenttype": "application/json", "data": {"a": [1, {"b": None}]}}),
    ("data-base64", {"specversion": "1.0", "id": "1", "source": "/s", "type": "t",
                     "datacontenttype": "image/png", "data_base64": "iVBORw0KGgo="}),
    ("data-string", {"specversion": "1.0", "id": "1", "source": "/s", "type": "t",
                     "datacontenttype": "text/xml", "data": "<a>é</a>"}),
    ("json-string-data", {"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "data": "\"quoted\""}),
    ("extensions", {"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "knativebrokerttl": 255,
                    "big": 2147483648, "neg": -2147483648, "flag": False, "str": "v", "partitionkey": "k"}),
    ("v03", {"specversion": "0.3", "id": "1", "source": "/s", "type": "t", "schemaurl": "http://x/",
             "datacontentencoding": "base64", "datacontenttype": "text/plain", "data": "aGk="}),
    ("ttl-huge", {"specversion": "1.0", "id": "1", "source": "/s", "type": "t",
                  "knativebrokerttl": -9223372036854775808}),
    ("ttl-string", {"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "knativebrokerttl": "abc"}),
    ("time-offset", {"specversion": "1.0", "id": "1", "source": "/s", "type": "t",
                     "time": "1985-04-12T23:20:50.52+99:99"}),
    ("empty-subject", {"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "subject": ""}),
    ("float", {"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "ext": 1.5, "data": 1e400}),
]


def events():
    j = Corpus("json_event")
    h = Corpus("http_binding")
    structured = []
    for name, headers, body in sdk_events():
        if "structured" in name:
            structured.append(json.loads(body))
            j.add(name, body)
        lines = "".join(f"{k}: {v}\n" for k, v in headers.items())
        mode = "S" if "structured" in name else "B"
        h.add(name, f"{mode}\n{lines}\n".encode() + body)
    for name, ev in HAND_STRUCTURED:
        text = json.dumps(ev, ensure_ascii=False)
        text = text.replace('"data": Infinity', '"data": 1e400')
        j.add(f"hand-{name}", text)
        h.add(f"hand-structured-{name}", "S\n\n" + text)
        structured.append(ev)
    j.add("hand-duplicate-id", '{"specversion":"1.0","id":"1","id":"2","source":"/s","type":"t"}')
    j.add("hand-deep-data", '{"specversion":"1.0","id":"1","source":"/s","type":"t","data":' + "[" * 200 + "]" * 200 + "}")
    j.add("hand-escapes", '{"specversion":"1.0","id":"\\u0000\\ud83d\\ude00","source":"/s","type":"\\\\t"}')
    j.add("hand-not-object", "[1]")
    finite = [e for e in structured if "data" not in e or e.get("data") != float("inf")]
    h.add("hand-batch", "A\n\n" + json.dumps(finite[:4]))
    h.add("hand-batch-empty", "A\n\n[]")
    h.add("hand-batch-bad-entry", 'A\n\n[{"specversion":"1.0","id":"1","source":"/s","type":"t"}, 7]')
    h.add("hand-batch-as-given", "X\ncontent-type: application/cloudevents-batch+json; charset=utf-8\n\n" + json.dumps(finite[:2]))
    h.add("hand-structured-as-given", "X\ncontent-type: Application/CloudEvents+JSON\n\n" + json.dumps(finite[0]))
    h.add("hand-unsupported-format", "X\ncontent-type: application/cloudevents+avro\n\nxx")
    h.add("hand-not-an-event", "X\ncontent-type: text/plain\n\nhello")
    binary = [
        ("minimal", "ce-specversion: 1.0\nce-id: 1\nce-source: /s\nce-type: t\n", ""),
        ("percent", "ce-specversion: 1.0\nce-id: %E2%82%AC%\nce-source: /s%2\nce-type: t%zz\nce-subject: a%20b\n", ""),
        ("extensions", "ce-specversion: 1.0\nce-id: 1\nce-source: /s\nce-type: t\nce-knativebrokerttl: 255\n"
                       "ce-myext: x\nce-time: 2020-01-02T03:04:05Z\nce-dataschema: urn:x\n"
                       "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\n"
                       "x-request-id: r\nknative-foo: bar\nretry-after: 3\n"
                       "content-type: application/json\n", '{"a": 1}'),
        ("ttl-min", "ce-specversion: 1.0\nce-id: 1\nce-source: /s\nce-type: t\nce-knativebrokerttl: -9223372036854775808\n", ""),
        ("ttl-abc", "ce-specversion: 1.0\nce-id: 1\nce-source: /s\nce-type: t\nce-knativebrokerttl: abc\n", ""),
        ("v03", "ce-specversion: 0.3\nce-id: 1\nce-source: /s\nce-type: t\nce-schemaurl: http://x\n"
                "content-type: text/plain\n", "hi"),
        ("duplicate-headers", "ce-specversion: 1.0\nce-id: 1\nce-id: 2\nce-source: /s\nce-type: t\nce-type: u\n", ""),
        ("empty-values", "ce-specversion: 1.0\nce-id:\nce-source:\nce-type:\nce-subject:\ncontent-type:\n", "x"),
        ("bad-specversion", "ce-specversion: 2.0\nce-id: 1\nce-source: /s\nce-type: t\n", ""),
    ]
    for name, headers, body in binary:
        h.add(f"hand-binary-{name}", f"B\n{headers}\n{body}")
        if name == "minimal":
            h.add("hand-binary-as-given", f"X\n{headers}\n{body}")


def durations():
    c = Corpus("durations")
    for s in [
        "PT1S", "PT0.2S", "PT1M30S", "P1DT2H", "P1D", "PT168H", "P1Y", "P1M", "P1W", "-PT1S", "+PT1S",
        "pt1s", "PT0.000000001S", "PT9223372036854775807S", "PT99999999999999999999S",
        "P106751991167300DT15H30M7S", "P99999999999D", "PT-1S", "P", "PT", "1s",
        "1h30m", "30s", "15m", "1.5h", "300ms", "1us", "1µs", "0", "+5s", "-1s", "2562047h",
        "2562048h", "9223372036s", "9223372037s", "1e3s", ".5s", "1..5s", "999999999999999999999h",
        "Wed, 21 Oct 2015 07:28:00 GMT", "Thu, 01 Jan 1970 00:00:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT",
        "Mon, 01 Jan 0001 00:00:00 GMT", "Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994", "120", "0", "18446744073709551615", "18446744073709551616",
        "99999999999999999999999999", "-1", "+3", " 3 ", "3.5", "",
    ]:
        c.add(f"d-{s}" if s else "d-empty", s)


if __name__ == "__main__":
    cesql()
    yaml_admission()
    events()
    durations()
    for d in sorted((ROOT / "corpus").iterdir()):
        print(f"{d.name}: {len(list(d.iterdir()))} seeds")
