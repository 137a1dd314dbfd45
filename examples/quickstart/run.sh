#!/usr/bin/env bash
# The quickstart: build Knit, start the event display on 127.0.0.1:9080 and run the broker and
# trigger of this folder on the embedded (in-memory) default. Events sent to the broker show up
# in this terminal. Stop with Ctrl-C.
set -euo pipefail
exec "$(dirname "$0")/../with-display.sh" -f examples/quickstart
