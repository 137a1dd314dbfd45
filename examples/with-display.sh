#!/usr/bin/env bash
# Shared by the examples' run.sh: build Knit, start `knit event-display` on 127.0.0.1:9080
# (stopped on exit) and run `knit run` with the arguments given (e.g. `-f examples/ping-source`).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin knit
bin="${CARGO_TARGET_DIR:-target}/release/knit"
"$bin" event-display --listen 127.0.0.1:9080 &
display=$!
trap 'kill $display 2>/dev/null' EXIT
"$bin" run "$@"
