#!/usr/bin/env bash
# PingSource: build Knit, start the event display on 127.0.0.1:9080 and run this folder. A ping
# event shows up in this terminal every ten seconds. Stop with Ctrl-C.
set -euo pipefail
exec "$(dirname "$0")/../with-display.sh" -f examples/ping-source
