#!/usr/bin/env bash
# ContainerSource: build Knit, start the event display on 127.0.0.1:9080 and run this folder. A
# heartbeat shows up in this terminal every two seconds. Stop with Ctrl-C.
set -euo pipefail
exec "$(dirname "$0")/../with-display.sh" -f examples/container-source
