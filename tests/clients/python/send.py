"""Send one CloudEvent with the official Python SDK (PyPI `cloudevents` 2.x).

usage: send.py URL binary|structured ID TYPE SOURCE JSON_DATA [name=value ...]
Prints the HTTP status code of the response.
"""
import json
import sys
import urllib.error
import urllib.request

from cloudevents.core.bindings.http import to_binary_event, to_structured_event
from cloudevents.core.v1.event import CloudEvent


def main() -> int:
    url, mode, id_, type_, source, data = sys.argv[1:7]
    attributes = {"id": id_, "type": type_, "source": source, "datacontenttype": "application/json"}
    for pair in sys.argv[7:]:
        name, value = pair.split("=", 1)
        attributes[name] = value
    event = CloudEvent(attributes, json.loads(data))
    message = to_binary_event(event) if mode == "binary" else to_structured_event(event)
    request = urllib.request.Request(url, data=message.body, headers=dict(message.headers), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            print(response.status)
    except urllib.error.HTTPError as error:
        print(error.code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
