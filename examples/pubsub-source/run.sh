#!/usr/bin/env bash
# CloudPubSubSource: start (or reuse) a Pub/Sub emulator, then build Knit, start the event
# display on 127.0.0.1:9080 and run this folder (examples/with-display.sh). Then, in another
# terminal, publish as the README shows (the emulator's address is printed first). Stop with
# Ctrl-C; an emulator started here is stopped too.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -z "${PUBSUB_EMULATOR_HOST:-}" ]; then
  PUBSUB_EMULATOR_HOST="$(scripts/pubsub-emulator)"
  trap 'scripts/pubsub-emulator --stop "$PUBSUB_EMULATOR_HOST"' EXIT
fi
export PUBSUB_EMULATOR_HOST
echo "Pub/Sub emulator: PUBSUB_EMULATOR_HOST=$PUBSUB_EMULATOR_HOST"
examples/with-display.sh -f examples/pubsub-source
