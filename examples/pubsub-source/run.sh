#!/usr/bin/env bash
# CloudPubSubSource: build Knit, start (or reuse) a Pub/Sub emulator, the event display on
# 127.0.0.1:9080, and run this folder. Then, in another terminal, publish as the README shows
# (the emulator's address is printed first). Stop with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --locked --bin knit
bin="${CARGO_TARGET_DIR:-target}/release/knit"
started=""
if [ -z "${PUBSUB_EMULATOR_HOST:-}" ]; then
  PUBSUB_EMULATOR_HOST="$(scripts/pubsub-emulator)"
  started=1
fi
export PUBSUB_EMULATOR_HOST
echo "Pub/Sub emulator: PUBSUB_EMULATOR_HOST=$PUBSUB_EMULATOR_HOST"
"$bin" event-display --listen 127.0.0.1:9080 &
display=$!
cleanup() {
  kill "$display" 2>/dev/null || true
  if [ -n "$started" ]; then scripts/pubsub-emulator --stop "$PUBSUB_EMULATOR_HOST"; fi
}
trap cleanup EXIT
"$bin" run -f examples/pubsub-source
