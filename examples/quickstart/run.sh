#!/usr/bin/env bash
# The quickstart: build Knit, start the event display on 127.0.0.1:9080 and run the broker and
# trigger of this folder on the embedded (in-memory) default. Events sent to the broker show up
# in this terminal. Stop with Ctrl-C.
#
# The first build compiles about 300 crates in release mode (17 CPU-minutes: about 10 minutes
# on an idle 2-core machine); cargo prints each crate as it goes. Later runs start in seconds.
set -euo pipefail
echo "quickstart: cargo build --release (the first build takes about 10 minutes on 2 cores; later ones seconds)" >&2
exec "$(dirname "$0")/../with-display.sh" -f examples/quickstart
