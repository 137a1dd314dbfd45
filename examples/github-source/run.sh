#!/usr/bin/env bash
# GitHubSource: build Knit, start the event display on 127.0.0.1:9080 and run this folder.
# Then, in another terminal, send a signed delivery as the README shows. Stop with Ctrl-C.
set -euo pipefail
exec "$(dirname "$0")/../with-display.sh" -f examples/github-source
