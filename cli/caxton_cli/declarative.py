"""`kubectl caxton` commands that change a cluster do it by changing its resources, so
the operator stays the one writer: deploying an agent creates a CaxtonAgent (and a
ConfigMap with its module), removing it deletes them, scaling patches the
CaxtonCluster's scale subresource. Each waits for the operator to report the result
(progress on stderr; --no-wait to return at once)."""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import sys
import time
from collections.abc import Callable
from typing import Any

from caxton_cli.client import ClusterRef, read_module
from caxton_cli.errors import CommandError
from caxton_cli.output import emit

MANAGER = "kubectl-caxton"
CONFIGMAP_LIMIT = 1_000_000  # bytes of binaryData a ConfigMap can hold, with room for metadata


def _api_errors(command: Callable[[argparse.Namespace], None]) -> Callable[[argparse.Namespace], None]:
    """The API server's refusals (say, a CEL rule) as the command's error, with its message."""

    @functools.wraps(command)
    def wrapped(args: argparse.Namespace) -> None:
        from caxton_kube import KubeError, KubeUnreachable

        try:
            command(args)
        except KubeError as err:
            raise CommandError(f"the API server refused: {err.message}", exit_code=1) from None
        except KubeUnreachable as err:
            raise CommandError(f"cannot reach the API server {err}", exit_code=2) from None

    return wrapped


def _wait(check: Callable[[], Any], *, timeout: float, what: str) -> Any:
    """Polls `check` until it returns something truthy; prints progress every 5 s."""
    started = last_note = time.monotonic()
    while True:
        result = check()
        if result:
            return result
        now = time.monotonic()
        if now - started > timeout:
            raise CommandError(f"timed out after {timeout:.0f}s waiting for {what}", exit_code=3)
        if now - last_note >= 5:
            print(f"waiting for {what} ({now - started:.0f}s)", file=sys.stderr, flush=True)
            last_note = now
        time.sleep(0.5)


@_api_errors
def agents_deploy(args: argparse.Namespace) -> None:
    wasm = read_module(args.module)  # bad input before any request
    ref = ClusterRef.from_args(args)
    if len(wasm) > CONFIGMAP_LIMIT:
        raise CommandError(f"{args.module} is {len(wasm)} bytes; a ConfigMap holds about 1 MB. Put the module "
                           "in a Secret or at an https:// URL and apply a CaxtonAgent yourself", exit_code=2)
    name, ns = args.id, ref.namespace
    labels = {"app.kubernetes.io/managed-by": MANAGER, "caxton.dev/agent": name}
    ref.kube.apply(f"/api/v1/namespaces/{ns}/configmaps/{name}-wasm", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{name}-wasm", "namespace": ns,
                                                              "labels": labels},
        "binaryData": {"agent.wasm": base64.b64encode(wasm).decode()},
    }, manager=MANAGER)
    limits = {k: v for k, v in {"memory": args.memory, "fuel": args.fuel, "deadline": args.deadline}.items() if v}
    ref.kube.apply(ref.path("caxtonagents", name), {
        "apiVersion": "caxton.dev/v1alpha1", "kind": "CaxtonAgent",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"clusterRef": {"name": ref.name}, "replicas": args.replicas, "priority": args.priority,
                 "limits": limits,
                 "module": {"configMapRef": {"name": f"{name}-wasm", "key": "agent.wasm"},
                            "sha256": hashlib.sha256(wasm).hexdigest()}},
    }, manager=MANAGER)
    agent = ref.kube.get(ref.path("caxtonagents", name))
    if not args.no_wait:
        def ready() -> dict[str, Any] | None:
            obj = ref.kube.get(ref.path("caxtonagents", name))
            status = obj.get("status") or {}
            refused = [c for c in status.get("conditions") or [] if c["status"] == "False"
                       and c["reason"] in ("ChecksumMismatch", "ModuleUnavailable", "ClusterNotFound")]
            if refused:
                raise CommandError(f"CaxtonAgent {name}: {refused[0]['message']}")
            return obj if status.get("readyReplicas") == args.replicas else None

        agent = _wait(ready, timeout=args.timeout, what=f"{args.replicas} replica(s) of {name} to run")
    placement = (agent.get("status") or {}).get("placement") or []
    emit(agent, args.output, headers=("REPLICA", "NODE", "STATE"),
         rows=[(p["replica"], p["node"], p["state"]) for p in placement],
         text=None if placement else f"caxtonagent/{name} applied to {ns}/{ref.name}")


@_api_errors
def agents_remove(args: argparse.Namespace) -> None:
    ref = ClusterRef.from_args(args)
    if ref.kube.delete(ref.path("caxtonagents", args.id)) is None:  # None: it did not exist
        raise CommandError(f"no CaxtonAgent {args.id} in {ref.namespace}; agents deployed straight to a "
                           "node are removed with `caxton agents remove --api ...`", exit_code=4)
    if not args.no_wait:
        _wait(lambda: ref.kube.get_or_none(ref.path("caxtonagents", args.id)) is None, timeout=args.timeout,
              what=f"the operator to remove {args.id} from every node")
    configmap = ref.kube.get_or_none(f"/api/v1/namespaces/{ref.namespace}/configmaps/{args.id}-wasm")
    if configmap and (configmap["metadata"].get("labels") or {}).get("app.kubernetes.io/managed-by") == MANAGER:
        ref.kube.delete(f"/api/v1/namespaces/{ref.namespace}/configmaps/{args.id}-wasm")
    print(f"caxtonagent/{args.id} removed")


@_api_errors
def cluster_scale(args: argparse.Namespace) -> None:
    ref = ClusterRef.from_args(args)
    ref.kube.patch(ref.path(name=ref.name) + "/scale", {"spec": {"replicas": args.replicas}}, kind="merge")
    status: dict[str, Any] = {}
    if not args.no_wait:
        def settled() -> dict[str, Any] | None:
            current = ref.kube.get(ref.path(name=ref.name)).get("status") or {}
            members = current.get("members") or []
            done = current.get("phase") == "Running" and len(members) == args.replicas and all(
                m["state"] == "alive" for m in members)
            return current if done else None

        status = _wait(settled, timeout=args.timeout, what=f"{ref.name} to run {args.replicas} alive members")
    emit({"cluster": ref.name, "replicas": args.replicas, "status": status}, args.output,
         text=f"caxtoncluster/{ref.name} scaled to {args.replicas}")
