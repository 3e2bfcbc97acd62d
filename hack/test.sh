#!/usr/bin/env bash
# The whole test suite: lint, type-check, then pytest (unit and end-to-end tests).
# Without KUBECONFIG the end-to-end tests start their own local control plane;
# with KUBECONFIG they run against that cluster. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/setup.sh
export PATH=$PWD/.venv/bin:$PATH
PKGS=(node/caxton_node operator/caxton_operator cli/caxton_cli kube/caxton_kube local/caxton_local tests bench plugins)
echo "==> ruff" >&2
ruff check "${PKGS[@]}"
echo "==> mypy" >&2
mypy "${PKGS[@]}"
echo "==> pytest" >&2
python -m pytest "$@"
