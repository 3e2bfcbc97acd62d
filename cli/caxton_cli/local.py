"""`caxton local up|down|status|kubeconfig|env`: the local Kubernetes control plane."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from caxton_local.controlplane import ControlPlane, ControlPlaneError
from caxton_local.layout import Layout, Settings, default_state_dir
from caxton_local.toolchain import ToolchainError

from caxton_cli.errors import CommandError
from caxton_cli.output import emit


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _plane(args: argparse.Namespace) -> ControlPlane:
    settings = Settings()
    if getattr(args, "port", None):
        settings.ports.apiserver = args.port
    if getattr(args, "nodes", None):
        settings.nodes = args.nodes
    if getattr(args, "crash_backoff", None) is not None:
        settings.crash_backoff_seconds = args.crash_backoff
    return ControlPlane(Layout(Path(args.state_dir) if args.state_dir else default_state_dir()), settings)


def cmd_up(args: argparse.Namespace) -> None:
    plane = _plane(args)
    try:
        timings = plane.up(log=_progress)
    except (ControlPlaneError, ToolchainError, TimeoutError) as err:
        raise CommandError(str(err)) from err
    for name, seconds in timings.items():
        _progress(f"{name} healthy after {seconds:.1f}s")
    if args.sample:
        from caxton_local.sample import apply_sample

        apply_sample(plane, log=_progress)
    emit(plane.describe(), args.output, text=(
        f"local control plane is up ({plane.server})\n\n"
        f"  export KUBECONFIG={plane.kubeconfig}\n"
        f"  export PATH={plane.layout.bin}:$PATH\n"
        "  kubectl get nodes\n"
        "  kubectl get pods -o wide\n"
        "  caxton local status\n"
    ))


def cmd_down(args: argparse.Namespace) -> None:
    _plane(args).down(purge=args.purge, log=_progress)


def cmd_status(args: argparse.Namespace) -> None:
    plane = _plane(args)
    components = plane.status()
    emit(plane.describe(), args.output, headers=("COMPONENT", "PID", "HEALTHY", "RSS", "ADDRESS"), rows=[
        (c.name, c.pid or "-", "yes" if c.healthy else "no",
         f"{c.rss_bytes / 2**20:.0f}Mi" if c.pid else "-", c.address)
        for c in components
    ])
    if not all(c.healthy for c in components):
        raise CommandError("the local control plane is not (fully) running: caxton local up", exit_code=3)


def cmd_kubeconfig(args: argparse.Namespace) -> None:
    plane = _plane(args)
    if not plane.kubeconfig.exists():
        raise CommandError(f"no local control plane in {plane.layout.root}: run `caxton local up`")
    print(plane.kubeconfig)


def cmd_env(args: argparse.Namespace) -> None:
    plane = _plane(args)
    print(f"export KUBECONFIG={plane.kubeconfig}")
    print(f"export PATH={plane.layout.bin}:$PATH")
