#!/usr/bin/env bash
# One command for a newcomer: install everything, start the local Kubernetes
# control plane with the sample workload, and print what to try next.
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/setup.sh
export PATH=$PWD/.venv/bin:$PATH
caxton local up --sample
