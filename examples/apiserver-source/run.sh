#!/usr/bin/env bash
# ApiServerSource against a real cluster: build Knit, start the event display on
# 127.0.0.1:9080 and run this folder with the kubeconfig in $KUBECONFIG (default
# ~/.kube/config). Then, in another terminal: kubectl create configmap knit-demo --from-literal=a=b
# Stop with Ctrl-C.
set -euo pipefail
exec "$(dirname "$0")/../with-display.sh" --kubeconfig "${KUBECONFIG:-$HOME/.kube/config}" -f examples/apiserver-source
