#!/usr/bin/env bash
# Installs what Caxton's development and tests need on a fresh Debian machine:
# system packages, a Python virtualenv with the project, and the control-plane
# binaries (built from the pinned Go modules, cached under ~/.cache/caxton).
# Safe to run again: every step skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

need_apt=()
# serf and nats-server: the references bench/cluster.py compares against (its test runs them);
# shellcheck: actionlint judges the workflows' run: scripts with it (tests/ci/test_workflows.py);
# buildah and debootstrap build the images here (caxton_local.imagebuild, tests/local/test_images.py).
for tool in cc:gcc unshare:util-linux nsenter:util-linux iptables:iptables ss:iproute2 promtool:prometheus zsh:zsh \
    shellcheck:shellcheck buildah:buildah debootstrap:debootstrap \
    serf:serf nats-server:nats-server; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need_apt+=("${tool##*:}")
done
if ((${#need_apt[@]})); then
  log "installing system packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH=/usr/local/go/bin:$PATH
fi
command -v go >/dev/null 2>&1 || { echo "error: Go 1.26.x is required on PATH to build the control plane" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  python3 -m venv .venv
fi
extras=test,bench  # bench: nats-py, for the NATS side of bench/cluster.py
stamp=.venv/.installed-$({ cat pyproject.toml; echo "$extras"; } | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  log "installing the project, its test tools and the benchmark clients into .venv"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".[$extras]"
  rm -f .venv/.installed-*
  touch "$stamp"
fi

log "building the control-plane binaries (cached after the first run)"
.venv/bin/python -m caxton_local.toolchain >&2
