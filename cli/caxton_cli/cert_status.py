"""`caxton security cert-status`: the runbook's certificate table, read from what each node
serves (`GET /v1/security`), not from what a Secret holds: NODE-ID, EXPIRES-IN and STATUS
(OK, WARNING inside renewBefore, EXPIRED), and a row per trusted CA. Exit 3 when a
certificate has expired, 2 when a node did not answer."""

from __future__ import annotations

import argparse
import calendar
import re
import time
from typing import Any

from caxton_cli.client import Answer, ClusterRef, ask_every_node
from caxton_cli.errors import CommandError
from caxton_cli.output import emit

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
DEFAULT_RENEW_BEFORE = "720h"


def seconds(duration: str) -> float:
    parts = re.findall(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)", duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise CommandError(f"--renew-before {duration!r} is not a duration such as 720h or 30m", exit_code=2)
    return sum(float(n) * _UNITS[u] for n, u in parts)


def expires_in(left: float) -> str:
    if left <= 0:
        return f"expired {_span(-left)} ago"
    return _span(left)


def _span(s: float) -> str:
    if s >= 2 * 86400:
        return f"{s / 86400:.0f} days"
    if s >= 2 * 3600:
        return f"{s / 3600:.0f} hours"
    if s >= 120:
        return f"{s / 60:.0f} minutes"
    return f"{s:.0f} seconds"


def verdict(left: float, renew_before: float) -> str:
    return "EXPIRED" if left <= 0 else "WARNING" if left <= renew_before else "OK"


def _left(not_after: str, now: float) -> float:
    return calendar.timegm(time.strptime(not_after, "%Y-%m-%dT%H:%M:%SZ")) - now


def rows_of(answers: list[Answer], renew_before: float, now: float) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = []
    cas: dict[str, dict[str, Any]] = {}
    for answer in answers:
        if answer.error is not None:
            nodes.append({"node": answer.node, "status": "UNREACHABLE", "error": str(answer.error)})
            continue
        tls, name = answer.result.get("tls"), answer.result.get("node") or answer.node  # the id it serves as
        if tls is None:
            nodes.append({"node": name, "status": "NO-TLS"})
            continue
        leaf, left = tls["leaf"], _left(tls["leaf"]["notAfter"], now)
        nodes.append({"node": name, "notAfter": leaf["notAfter"], "expiresInSeconds": round(left),
                      "status": verdict(left, renew_before), "fingerprint": leaf["fingerprint"],
                      "issuer": leaf["issuer"]})
        for ca in tls["trusted"]:
            entry = cas.setdefault(ca["fingerprint"], {
                "fingerprint": ca["fingerprint"], "subject": ca["subject"], "notAfter": ca["notAfter"],
                "expiresInSeconds": round(_left(ca["notAfter"], now)), "trustedBy": []})
            entry["status"] = verdict(entry["expiresInSeconds"], renew_before)
            entry["trustedBy"].append(name)
    return {"renewBeforeSeconds": renew_before, "nodes": nodes, "cas": list(cas.values())}


def cert_status(args: argparse.Namespace) -> None:
    renew_before = args.renew_before
    if renew_before is None and args.front_door == "kubectl":
        ref = ClusterRef.from_args(args)
        cluster = ref.kube.get_or_none(ref.path(name=ref.name)) or {}
        renew_before = ((cluster.get("spec") or {}).get("tls") or {}).get("renewBefore")
    window = seconds(renew_before or DEFAULT_RENEW_BEFORE)
    answers = ask_every_node(args, lambda client: client.call("GET", "/v1/security"))
    report = rows_of(answers, window, time.time())
    rows = [(n["node"], expires_in(n["expiresInSeconds"]) if "expiresInSeconds" in n else "-", n["status"])
            for n in report["nodes"]]
    total = len(report["cas"])
    rows += [(f"CA {c['fingerprint'][:12]}" + (f" ({len(c['trustedBy'])} of {len(answers)} nodes)"
                                               if total > 1 or len(c["trustedBy"]) < len(answers) else ""),
              expires_in(c["expiresInSeconds"]), c["status"]) for c in report["cas"]]
    emit(report, args.output, headers=("NODE-ID", "EXPIRES-IN", "STATUS"), rows=rows)
    unreachable = [n for n in report["nodes"] if n["status"] == "UNREACHABLE"]
    if unreachable:
        raise CommandError("; ".join(f"{n['node']}: {n['error']}" for n in unreachable), exit_code=2)
    expired = [n["node"] for n in report["nodes"] if n["status"] == "EXPIRED"]
    if expired:
        raise CommandError(f"expired certificates on {', '.join(expired)}", exit_code=3)
