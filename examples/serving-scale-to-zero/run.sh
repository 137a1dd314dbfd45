#!/usr/bin/env bash
# A PingSource feeding a scale-to-zero Knative Service: build Knit and run this folder. In
# another terminal, follow the Service's output: `knit logs ksvc/hello -f`. Stop with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --locked --bin knit
"${CARGO_TARGET_DIR:-target}/release/knit" run -f examples/serving-scale-to-zero
