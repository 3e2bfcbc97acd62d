"""`kubectl caxton cluster stop --all` and `cluster start [--verify]`: the runbook's
"stop the cluster, restore, start it" as hibernation (like CloudNativePG's).

Stopping sets the `caxton.dev/hibernation: on` annotation: the operator scales the
StatefulSet to zero keeping every volume, and the phase becomes Hibernated.
Starting removes it, waits until every member is alive, and with --verify runs
`cluster verify` before it says the cluster is back.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from caxton_cli.client import ClusterRef
from caxton_cli.declarative import _api_errors
from caxton_cli.errors import CommandError
from caxton_cli.output import emit

ANNOTATION = "caxton.dev/hibernation"


def _follow(ref: ClusterRef, done: Any, timeout: float, what: str) -> dict[str, Any]:
    """Prints a line per phase change until `done(status)`; exit 3 after `timeout`."""
    started = time.monotonic()
    last = ""
    while True:
        status = ref.kube.get(ref.path(name=ref.name)).get("status") or {}
        line = f"{ref.name}: {status.get('phase', 'Pending')}, {status.get('readyReplicas', 0)} pod(s) ready"
        if line != last:
            print(line, file=sys.stderr, flush=True)
            last = line
        if done(status):
            return dict(status)
        if time.monotonic() - started > timeout:
            raise CommandError(f"timed out after {timeout:.0f}s waiting for {what}; {line}", exit_code=3)
        time.sleep(1)


@_api_errors
def stop(args: argparse.Namespace) -> None:
    if not args.all:
        raise CommandError("stopping single nodes is not supported: use --all to hibernate the whole cluster",
                           exit_code=2)
    ref = ClusterRef.from_args(args)
    ref.kube.patch(ref.path(name=ref.name), {"metadata": {"annotations": {ANNOTATION: "on"}}})
    status: dict[str, Any] = {}
    if not args.no_wait:
        status = _follow(ref, lambda s: s.get("phase") == "Hibernated", args.timeout, "every pod to stop")
    emit({"cluster": ref.name, "status": status}, args.output,
         text=f"caxtoncluster/{ref.name} hibernated: no pods run, volumes kept (cluster start to bring it back)")


@_api_errors
def start(args: argparse.Namespace) -> None:
    ref = ClusterRef.from_args(args)
    cluster = ref.kube.get(ref.path(name=ref.name))
    replicas = int(cluster["spec"].get("replicas", 0))
    ref.kube.patch(ref.path(name=ref.name), {"metadata": {"annotations": {ANNOTATION: None}}})

    def back(status: dict[str, Any]) -> bool:
        alive = [m for m in status.get("members") or [] if m.get("state") == "alive"]
        return status.get("phase") == "Running" and len(alive) == replicas

    status = _follow(ref, back, args.timeout, f"{replicas} alive members")
    if args.verify:  # its answer is the command's: exit 3 on any difference
        from caxton_cli.cluster_commands import verify

        print(f"{ref.name}: {replicas} members alive; verifying", file=sys.stderr, flush=True)
        verify(argparse.Namespace(**{**vars(args), "node": None}))
        return
    emit({"cluster": ref.name, "status": status}, args.output,
         text=f"caxtoncluster/{ref.name} running: {replicas} members alive")
