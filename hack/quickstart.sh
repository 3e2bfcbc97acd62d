#!/usr/bin/env bash
# One command for a newcomer: install everything, start the local Kubernetes
# control plane, install the operator with helm, apply a three-node CaxtonCluster,
# show it forming, and print what to try next.
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/setup.sh
export PATH=$PWD/.venv/bin:$PATH
caxton local up --sample
eval "$(caxton local env)"
echo "==> installing the operator (helm install caxton-operator helm/caxton-operator -n caxton-system)"
helm upgrade --install caxton-operator helm/caxton-operator -n caxton-system --create-namespace --wait --timeout 180s
kubectl apply -f examples/caxtoncluster.yaml
echo "==> waiting for the CaxtonCluster demo to be Ready"
kubectl wait cxc/demo --for=condition=Ready --timeout=180s
kubectl get cxc demo
kubectl caxton cluster members --cluster demo
cat <<'EOF'

Next:
  eval "$(caxton local env)"
  kubectl get cxc demo -o yaml                  # status: members, conditions, certificates
  bash examples/deploy-echo-agent.sh            # a CaxtonAgent with two replicas
  kubectl scale cxc demo --replicas=5
  kubectl get events --field-selector involvedObject.name=demo
EOF
