#!/usr/bin/env bash
# ContainerSource: build Knit, start the event display on 127.0.0.1:9080 and run this folder. A
# heartbeat shows up in this terminal every two seconds. Stop with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --locked --bin knit
bin="${CARGO_TARGET_DIR:-target}/release/knit"
"$bin" event-display --listen 127.0.0.1:9080 &
display=$!
trap 'kill $display 2>/dev/null' EXIT
"$bin" run -f examples/container-source
