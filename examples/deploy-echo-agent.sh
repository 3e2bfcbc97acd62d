#!/usr/bin/env bash
# Builds the echo agent, stores it in a ConfigMap and deploys it as a CaxtonAgent
# with two replicas on the CaxtonCluster "demo" (namespace: the context's).
set -euo pipefail
cd "$(dirname "$0")"
bash agents/build.sh >/dev/null
kubectl create configmap echo-wasm --from-file=agent.wasm=agents/build/echo.wasm --dry-run=client -o yaml \
  | kubectl apply -f -
sha=$(sha256sum agents/build/echo.wasm | cut -d' ' -f1)
kubectl apply -f - <<EOF
apiVersion: caxton.dev/v1alpha1
kind: CaxtonAgent
metadata: {name: echo}
spec:
  clusterRef: {name: demo}
  module: {configMapRef: {name: echo-wasm, key: agent.wasm}, sha256: "$sha"}
  replicas: 2
  limits: {memory: 16Mi, deadline: 10ms}
EOF
kubectl wait cxa/echo --for=jsonpath='{.status.readyReplicas}'=2 --timeout=60s
kubectl get cxa echo -o jsonpath='{range .status.placement[*]}{.replica} on {.node}: {.state}{"\n"}{end}'
