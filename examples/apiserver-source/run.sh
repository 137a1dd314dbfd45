#!/usr/bin/env bash
# ApiServerSource against a real cluster: build Knit, start the event display on
# 127.0.0.1:9080 and run this folder with the kubeconfig in $KUBECONFIG (default
# ~/.kube/config). Then, in another terminal: kubectl create configmap knit-demo --from-literal=a=b
# Stop with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --locked --bin knit
bin="${CARGO_TARGET_DIR:-target}/release/knit"
"$bin" event-display --listen 127.0.0.1:9080 &
display=$!
trap 'kill $display 2>/dev/null' EXIT
"$bin" run --kubeconfig "${KUBECONFIG:-$HOME/.kube/config}" -f examples/apiserver-source
