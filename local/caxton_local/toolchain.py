"""Builds the pinned control-plane binaries (and kubectl, helm) from Go modules.

Each tool has a small Go module under `local/tools/<name>/` whose go.mod/go.sum pin
the upstream release. Binaries land in `~/.cache/caxton/bin/<name>-<version>/`,
so a repeat run finds them and a version bump builds afresh. A cold Kubernetes
build takes minutes on two cores, so the build reports progress as it goes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

TOOLS_DIR = Path(__file__).resolve().parents[1] / "tools"
SUPPORTED_GO = (1, 26)


class ToolchainError(RuntimeError):
    """The binaries cannot be built; the message says what to install or change."""


@dataclass(frozen=True)
class Tool:
    """One pinned Go module and the commands built from it."""

    name: str
    module: str  # the upstream module whose version pins the build
    packages: dict[str, str]  # output binary name -> Go package
    ldflags: Callable[[str], list[str]] = field(default=lambda version: [])
    # Source edits applied through `go build -overlay`: file in the module -> (old, new) pairs.
    patches: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    patched_binaries: tuple[str, ...] = ()

    @property
    def module_dir(self) -> Path:
        return TOOLS_DIR / self.name

    def version(self) -> str:
        gomod = (self.module_dir / "go.mod").read_text()
        match = re.search(rf"^\s*(?:require\s+)?{re.escape(self.module)}\s+(v\S+)", gomod, re.M)
        if not match:
            raise ToolchainError(f"{self.module} is not required in {self.module_dir}/go.mod")
        return match.group(1)

    def cache_dir(self) -> Path:
        return cache_root() / "bin" / f"{self.name}-{self.version()}"

    def binary(self, name: str) -> Path:
        return self.cache_dir() / name

    def is_built(self) -> bool:
        return all(self.binary(name).is_file() for name in self.packages)


def _kubernetes_ldflags(version: str) -> list[str]:
    # Without these, the binaries report v0.0.0 and kubectl cannot parse the server version.
    major, minor = version.lstrip("v").split(".")[:2]
    flags = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate=1970-01-01T00:00:00Z",
        ]
    return flags


KUBERNETES = Tool(
    name="kubernetes",
    module="k8s.io/kubernetes",
    packages={
        "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
        "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
        "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
        "kubectl": "k8s.io/kubernetes/cmd/kubectl",
    },
    ldflags=_kubernetes_ldflags,
    patches={
        # The pod proxy refuses pod IPs that are not global unicast; the process kubelet's
        # pods live on 127.0.0.N. This is the one change from upstream: loopback is allowed.
        "pkg/registry/core/pod/strategy.go": [(
            "ip == nil || !ip.IsGlobalUnicast() {",
            "ip == nil || !(ip.IsGlobalUnicast() || ip.IsLoopback()) {",
        )],
    },
    patched_binaries=("kube-apiserver",),
)
ETCD = Tool(
    name="etcd",
    module="go.etcd.io/etcd/server/v3",
    packages={"etcd": "go.etcd.io/etcd/server/v3"},
)
HELM = Tool(
    name="helm",
    module="helm.sh/helm/v3",
    packages={"helm": "helm.sh/helm/v3/cmd/helm"},
    ldflags=lambda version: [f"-X helm.sh/helm/v3/internal/version.version={version}"],
)
COREDNS = Tool(
    name="coredns",
    module="github.com/coredns/coredns",
    packages={"coredns": "github.com/coredns/coredns"},
)
# Not part of the control plane: the S3-compatible server the backup tests store backups in.
VERSITYGW = Tool(
    name="versitygw",
    module="github.com/versity/versitygw",
    packages={"versitygw": "github.com/versity/versitygw/cmd/versitygw"},
)
ACTIONLINT = Tool(
    name="actionlint",
    module="github.com/rhysd/actionlint",
    packages={"actionlint": "github.com/rhysd/actionlint/cmd/actionlint"},
    ldflags=lambda version: [f"-X github.com/rhysd/actionlint.version={version}"],
)
ALL_TOOLS = (ETCD, KUBERNETES, HELM, COREDNS)
# Not part of the control plane: what the test suite runs beside it (built by setup, cached the same way).
DEV_TOOLS = (VERSITYGW, ACTIONLINT)


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "caxton"


def go_version() -> tuple[int, int, int]:
    go = shutil.which("go")
    if not go:
        raise ToolchainError(
            "Go is not installed: the control plane is built from Go modules. "
            f"Install Go {SUPPORTED_GO[0]}.{SUPPORTED_GO[1]}.x and put it on PATH."
        )
    out = subprocess.run(
        [go, "env", "GOVERSION"], capture_output=True, text=True, check=True,
        env={**os.environ, "GOTOOLCHAIN": "local"},
    ).stdout.strip()
    match = re.match(r"go(\d+)\.(\d+)(?:\.(\d+))?", out)
    if not match:
        raise ToolchainError(f"cannot parse Go version {out!r}")
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def check_go() -> str:
    """Refuses Go versions known to build a broken control plane; returns the version."""
    version = go_version()
    text = ".".join(map(str, version))
    if version[:2] < SUPPORTED_GO:
        raise ToolchainError(
            f"Go {text} is too old: helm and etcd pins need Go {SUPPORTED_GO[0]}.{SUPPORTED_GO[1]}.x"
        )
    if version[:2] > SUPPORTED_GO:
        raise ToolchainError(
            f"Go {text} is not supported: an apiserver built with Go >= 1.27 serves a broken "
            "/openapi/v2 ('$root has invalid property: Extensions', from Go 1.27's JSON v2 "
            "default), which breaks `kubectl apply` validation. "
            f"Use Go {SUPPORTED_GO[0]}.{SUPPORTED_GO[1]}.x."
        )
    return text


def _patched_modfile(tool: Tool, env: dict[str, str]) -> list[str]:
    """Copies the module, applies `tool.patches`, and returns `-modfile` flags that use it.

    `go build -overlay` may not replace files in the module cache, so the patched
    module is a copy under the cache, keyed by version and patch content.
    """
    if not tool.patches:
        return []
    listing = subprocess.run(
        ["go", "list", "-m", "-f", "{{.Dir}}", tool.module], cwd=tool.module_dir, env=env,
        capture_output=True, text=True, check=True,
    )
    pristine = Path(listing.stdout.strip())
    digest = hashlib.sha256(json.dumps(tool.patches, sort_keys=True).encode()).hexdigest()[:12]
    copy = cache_root() / "src" / f"{tool.name}-{tool.version()}-{digest}"
    if not (copy / ".patched").exists():
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(pristine, copy)
        for path in [copy, *copy.rglob("*")]:
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o200)
        for rel, edits in tool.patches.items():
            text = (copy / rel).read_text()
            for old, new in edits:
                if old not in text:
                    raise ToolchainError(f"patch for {tool.module} {rel} no longer applies: {old!r} not found")
                text = text.replace(old, new)
            (copy / rel).write_text(text)
        (copy / ".patched").touch()
    modfile = copy.with_name(copy.name + ".go.mod")
    gomod = (tool.module_dir / "go.mod").read_text()
    modfile.write_text(gomod + f"\nreplace {tool.module} => {copy}\n")
    shutil.copyfile(tool.module_dir / "go.sum", modfile.with_suffix(".sum"))
    return [f"-modfile={modfile}"]


def _stream_progress(proc: subprocess.Popen[str], label: str, log: Callable[[str], None]) -> list[str]:
    """Counts the packages `go build -v` reports and prints a line every few seconds."""
    compiled = 0
    tail: list[str] = []
    started = time.monotonic()
    last_report = started
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        if not line:
            continue
        if re.match(r"^[\w.\-]+(/[\w.\-~]+)*$", line):
            compiled += 1
        else:
            tail = [*tail[-40:], line]
        now = time.monotonic()
        if now - last_report >= 15:
            last_report = now
            log(f"  {label}: {compiled} packages compiled ({now - started:.0f}s)")
    return tail


def build(tool: Tool, *, log: Callable[[str], None] = print, force: bool = False) -> Path:
    """Builds `tool` into its cache directory unless it is already there."""
    if tool.is_built() and not force:
        return tool.cache_dir()
    check_go()
    version = tool.version()
    out_dir = tool.cache_dir()
    tmp_dir = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    tmp_dir.mkdir(parents=True)
    env = {**os.environ, "CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly"}
    label = f"{tool.name} {version}"
    log(f"building {label} from Go modules (cold builds take minutes; cached afterwards)")
    started = time.monotonic()
    download = subprocess.run(
        ["go", "mod", "download"], cwd=tool.module_dir, env=env, capture_output=True, text=True
    )
    if download.returncode != 0:
        raise ToolchainError(f"go mod download for {label} failed:\n{download.stderr[-4000:]}")
    ldflags = " ".join(["-s", "-w", *tool.ldflags(version)])
    cmd = ["go", "build", "-v", "-trimpath", "-ldflags", ldflags]
    for name, pkg in tool.packages.items():
        patch_flags = _patched_modfile(tool, env) if name in tool.patched_binaries else []
        # One `go build` per binary: -o with several main packages names them after the
        # package path's last element, which is wrong for etcd (`v3`).
        proc = subprocess.Popen(
            [*cmd, *patch_flags, "-o", str(tmp_dir / name), pkg],
            cwd=tool.module_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )
        stopper = threading.Timer(3600, proc.kill)
        stopper.start()
        try:
            tail = _stream_progress(proc, f"{label} ({name})", log)
            code = proc.wait()
        finally:
            stopper.cancel()
        if code != 0:
            raise ToolchainError(f"building {name} ({pkg}) failed:\n" + "\n".join(tail))
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp_dir.rename(out_dir)
    log(f"built {label} in {time.monotonic() - started:.0f}s -> {out_dir}")
    return out_dir


def build_all(*, log: Callable[[str], None] = print) -> dict[str, Path]:
    """Every binary the local control plane and the tests need, by binary name."""
    binaries: dict[str, Path] = {}
    for tool in ALL_TOOLS:
        build(tool, log=log)
        binaries.update({name: tool.binary(name) for name in tool.packages})
    return binaries


def main() -> None:
    """`python -m caxton_local.toolchain [TOOL...]`: build every tool (used by setup and CI to warm
    the cache), or only the named ones (`helm` for a kind job); prints `binary: path` lines."""
    tools = {tool.name: tool for tool in (*ALL_TOOLS, *DEV_TOOLS)}
    names = sys.argv[1:] or list(tools)
    unknown = sorted(set(names) - set(tools))
    if unknown:
        print(f"error: unknown tool {', '.join(unknown)}; known: {', '.join(tools)}", file=sys.stderr)
        sys.exit(2)
    try:
        for name in names:
            tool = tools[name]
            built = build(tool, log=lambda line: print(line, file=sys.stderr))
            for binary in tool.packages:
                print(f"{binary}: {built / binary}")
    except ToolchainError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
