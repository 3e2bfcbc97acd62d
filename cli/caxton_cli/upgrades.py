"""`kubectl caxton cluster upgrade start|status|rollback|pause|resume|promote` and
`cluster rolling-restart`: the runbook's rolling upgrade, carried out by the operator.

Every verb creates or patches a CaxtonUpgrade (spec, or a one-shot annotation for
promote and rollback), so the operator stays the one writer; `--wait` follows its
status. Exit codes: 0 done, 1 refused or the upgrade failed/rolled back, 2 bad input
or cluster unreachable, 3 timed out, 4 not found.
"""

from __future__ import annotations

import argparse
import calendar
import re
import sys
import time
from typing import Any

from caxton_cli.client import ClusterRef
from caxton_cli.declarative import _api_errors
from caxton_cli.errors import CommandError
from caxton_cli.output import emit, table

SEMVER = re.compile(r"^v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$")
DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$")
FINISHED = ("Succeeded", "RolledBack")
ENDED = ("Succeeded", "RolledBack", "Failed")
HOLDER = "caxton.dev/upgrade"


def _upgrades(ref: ClusterRef) -> list[dict[str, Any]]:
    items = ref.kube.get(ref.path("caxtonupgrades"))["items"]
    mine = [u for u in items if u["spec"]["clusterRef"]["name"] == ref.name]
    return sorted(mine, key=lambda u: (u["metadata"].get("creationTimestamp", ""), u["metadata"]["name"]))


def current(ref: ClusterRef, name: str | None = None) -> dict[str, Any]:
    """The named upgrade, else the one holding the cluster, else one not yet finished, else the latest."""
    if name:
        found = ref.kube.get_or_none(ref.path("caxtonupgrades", name))
        if found is None:
            raise CommandError(f"no CaxtonUpgrade {name} in {ref.namespace}", exit_code=4)
        return dict(found)
    upgrades = _upgrades(ref)
    if not upgrades:
        raise CommandError(f"no CaxtonUpgrade for {ref.namespace}/{ref.name}: start one with "
                           "kubectl caxton cluster upgrade start --version X", exit_code=4)
    cluster = ref.kube.get_or_none(ref.path(name=ref.name)) or {}
    holder = ((cluster.get("metadata") or {}).get("annotations") or {}).get(HOLDER)
    for upgrade in upgrades:
        if upgrade["metadata"]["name"] == holder:
            return dict(upgrade)
    pending = [u for u in upgrades if (u.get("status") or {}).get("phase") not in ENDED]
    return dict((pending or upgrades)[-1])


def _wait_phase(ref: ClusterRef, name: str, phases: tuple[str, ...], timeout: float) -> dict[str, Any]:
    started = last_note = time.monotonic()
    last_phase = None
    while True:
        upgrade = ref.kube.get_or_none(ref.path("caxtonupgrades", name))
        if upgrade is None:
            raise CommandError(f"CaxtonUpgrade {name} was deleted", exit_code=4)
        status = upgrade.get("status") or {}
        phase = status.get("phase")
        if phase in phases:
            return dict(upgrade)
        now = time.monotonic()
        if phase != last_phase or now - last_note >= 10:
            print(f"{name}: {phase or 'Pending'} {status.get('progress', '')} {status.get('message', '')}".rstrip(),
                  file=sys.stderr, flush=True)
            last_phase, last_note = phase, now
        if now - started > timeout:
            raise CommandError(f"timed out after {timeout:.0f}s waiting for {name} to reach {'/'.join(phases)} "
                               f"(it is {phase or 'Pending'})", exit_code=3)
        time.sleep(1)


def _outcome(upgrade: dict[str, Any]) -> None:
    status = upgrade.get("status") or {}
    if status.get("phase") in ("RolledBack", "Failed"):
        raise CommandError(f"{upgrade['metadata']['name']} {status['phase']}: {status.get('message', '')}",
                           exit_code=1)


# -- status -------------------------------------------------------------------------------------------------

def _since(iso: str | None) -> str:
    if not iso:
        return "-"
    seconds = max(int(time.time() - calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ"))), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes}m" if hours else f"{minutes}m {secs}s" if minutes else f"{secs}s"


def runbook_lines(upgrade: dict[str, Any]) -> str:
    """PHASE, PROGRESS, CANARY, ETA as the runbook shows them, then one line per gate."""
    spec, status = upgrade["spec"], upgrade.get("status") or {}
    phase = status.get("phase", "Pending")
    lines = [f"UPGRADE: {upgrade['metadata']['name']} ({status.get('fromVersion', '?')} -> {spec['version']}"
             f"{', restart' if spec.get('restart') else ''})",
             f"PHASE: {phase}" + (f" (paused in {status['pausedFrom']})" if phase == "Paused" else ""),
             f"PROGRESS: {status.get('progress', '0/?')} nodes upgraded"]
    canary = status.get("canaryPod")
    if not canary:
        lines.append("CANARY: -")
    elif status.get("healthySince"):
        lines.append(f"CANARY: Healthy for {_since(status['healthySince'])} ({canary})")
    elif phase in ("Canary", "Monitoring"):
        lines.append(f"CANARY: {canary}, not healthy yet")
    else:
        lines.append(f"CANARY: {canary}")
    eta = status.get("eta")
    lines.append(f"ETA: {_until(eta)} ({eta})" if eta else "ETA: -")
    if status.get("message"):
        lines.append(f"REASON: {status.get('reason', '')}: {status['message']}")
    gates = status.get("gates") or []
    if gates:
        lines.append(table(("GATE", "STATE", "OBSERVED", "THRESHOLD", "OLD NODES", "SINCE"), [
            (g["name"], g["state"], g["observed"], g["threshold"], g.get("oldNodes", "-"), _since(g.get("since")))
            for g in gates]))
    return "\n".join(lines)


def _until(iso: str) -> str:
    seconds = max(int(calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ")) - time.time()), 0)
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    return f"{hours}h {minutes}m" if hours else f"{minutes} minutes" if minutes else f"{seconds} seconds"


@_api_errors
def status(args: argparse.Namespace) -> None:
    ref = ClusterRef.from_args(args)
    upgrade = current(ref, args.name)
    name = upgrade["metadata"]["name"]
    if not args.watch:
        emit(upgrade, args.output, text=runbook_lines(upgrade))
        return
    deadline = time.monotonic() + args.timeout
    shown = ""
    while True:
        text = runbook_lines(upgrade)
        if text != shown and args.output == "table":
            print(text + "\n", flush=True)
            shown = text
        if (upgrade.get("status") or {}).get("phase") in ENDED:
            break
        if time.monotonic() > deadline:
            raise CommandError(f"stopped watching {name} after {args.timeout:.0f}s", exit_code=3)
        time.sleep(1)
        upgrade = current(ref, name)
    if args.output != "table":
        emit(upgrade, args.output)


# -- start, rolling-restart ------------------------------------------------------------------------------------

def _create(ref: ClusterRef, name: str, spec: dict[str, Any], args: argparse.Namespace) -> None:
    from caxton_kube import KubeError

    body = {"apiVersion": "caxton.dev/v1alpha1", "kind": "CaxtonUpgrade",
            "metadata": {"name": name, "namespace": ref.namespace}, "spec": spec}
    try:
        ref.kube.create(ref.path("caxtonupgrades"), body)
    except KubeError as err:
        if err.status == 409:
            raise CommandError(f"CaxtonUpgrade {name} already exists; see kubectl caxton cluster upgrade status "
                               f"--name {name}, or pick another --name", exit_code=1) from None
        raise
    if args.no_wait:
        emit(body, args.output, text=f"caxtonupgrade/{name} created for {ref.namespace}/{ref.name}")
        return
    final = _wait_phase(ref, name, ENDED, args.timeout)
    emit(final, args.output, text=runbook_lines(final))
    _outcome(final)


@_api_errors
def start(args: argparse.Namespace) -> None:
    if not SEMVER.match(args.version):
        raise CommandError(f"--version {args.version!r} is not a semantic version such as 1.3.0", exit_code=2)
    if not DURATION.match(args.canary_duration):
        raise CommandError(f"--canary-duration {args.canary_duration!r} is not a duration such as 10m or 0s",
                           exit_code=2)
    if args.batch_size < 1:
        raise CommandError("--batch-size must be at least 1", exit_code=2)
    ref = ClusterRef.from_args(args)
    if ref.kube.get_or_none(ref.path(name=ref.name)) is None:
        raise CommandError(f"no CaxtonCluster {ref.name} in {ref.namespace}", exit_code=4)
    version = args.version.removeprefix("v")
    canary: dict[str, Any] = {"duration": args.canary_duration}
    for key, value in (("maxErrorRate", args.max_error_rate), ("maxP99Latency", args.max_p99_latency),
                       ("minMessages", args.min_messages)):
        if value is not None:
            canary[key] = value
    spec = {"clusterRef": {"name": ref.name}, "version": version, "canary": canary, "batchSize": args.batch_size,
            "autoRollback": not args.no_auto_rollback, "allowDowngrade": args.allow_downgrade}
    _create(ref, args.name or f"{ref.name}-to-{version.replace('.', '-')}"[:63].lower(), spec, args)


@_api_errors
def rolling_restart(args: argparse.Namespace) -> None:
    ref = ClusterRef.from_args(args)
    cluster = ref.kube.get_or_none(ref.path(name=ref.name))
    if cluster is None:
        raise CommandError(f"no CaxtonCluster {ref.name} in {ref.namespace}", exit_code=4)
    version = (cluster.get("status") or {}).get("currentVersion") or cluster["spec"]["version"]
    name = args.name or f"{ref.name}-restart-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}"
    spec = {"clusterRef": {"name": ref.name}, "version": version, "restart": True, "reason": args.reason,
            "canary": {"duration": "0s"}, "batchSize": args.batch_size}
    _create(ref, name, spec, args)


# -- rollback, pause, resume, promote ---------------------------------------------------------------------------------

@_api_errors
def rollback(args: argparse.Namespace) -> None:
    ref = ClusterRef.from_args(args)
    upgrade = current(ref, args.name)
    name, phase = upgrade["metadata"]["name"], (upgrade.get("status") or {}).get("phase", "Pending")
    if phase in FINISHED or phase == "RollingBack":
        raise CommandError(f"{name} is {phase}: nothing to roll back" + (
            "; to go back, start an upgrade to the old version with --allow-downgrade" if phase == "Succeeded"
            else ""), exit_code=1)
    ref.kube.patch(ref.path("caxtonupgrades", name), {"metadata": {"annotations": {
        "caxton.dev/rollback": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}}})
    if args.no_wait:
        print(f"caxtonupgrade/{name}: rollback requested")
        return
    final = _wait_phase(ref, name, ("RolledBack",), args.timeout)
    emit(final, args.output, text=runbook_lines(final))


def _set_paused(args: argparse.Namespace, paused: bool) -> None:
    ref = ClusterRef.from_args(args)
    upgrade = current(ref, args.name)
    name, phase = upgrade["metadata"]["name"], (upgrade.get("status") or {}).get("phase", "Pending")
    if phase in ENDED and not (phase == "Failed" and not paused):
        raise CommandError(f"{name} is {phase}: there is nothing to {'pause' if paused else 'resume'}", exit_code=1)
    ref.kube.patch(ref.path("caxtonupgrades", name), {"spec": {"paused": paused}})
    if args.no_wait:
        print(f"caxtonupgrade/{name}: paused={str(paused).lower()}")
        return
    if paused:
        final = _wait_phase(ref, name, ("Paused", *ENDED), args.timeout)
    else:
        final = _wait_for(ref, name, lambda s: s.get("phase") != "Paused", args.timeout, "to resume")
    emit(final, args.output, text=runbook_lines(final))


def _wait_for(ref: ClusterRef, name: str, check: Any, timeout: float, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        upgrade = ref.kube.get(ref.path("caxtonupgrades", name))
        if check(upgrade.get("status") or {}):
            return dict(upgrade)
        if time.monotonic() > deadline:
            raise CommandError(f"timed out after {timeout:.0f}s waiting for {name} {what}", exit_code=3)
        time.sleep(0.5)


@_api_errors
def pause(args: argparse.Namespace) -> None:
    _set_paused(args, True)


@_api_errors
def resume(args: argparse.Namespace) -> None:
    _set_paused(args, False)


@_api_errors
def promote(args: argparse.Namespace) -> None:
    ref = ClusterRef.from_args(args)
    upgrade = current(ref, args.name)
    name, phase = upgrade["metadata"]["name"], (upgrade.get("status") or {}).get("phase", "Pending")
    if phase not in ("Canary", "Monitoring"):
        raise CommandError(f"{name} is {phase}: only a canary being held can be promoted", exit_code=1)
    ref.kube.patch(ref.path("caxtonupgrades", name), {"metadata": {"annotations": {
        "caxton.dev/promote": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}}})
    if args.no_wait:
        print(f"caxtonupgrade/{name}: promotion requested")
        return
    final = _wait_for(ref, name, lambda s: s.get("phase") not in ("Canary", "Monitoring"), args.timeout,
                      "to leave the canary hold")
    emit(final, args.output, text=runbook_lines(final))
