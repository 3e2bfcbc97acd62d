"""Certificates, gossip key and API token of a CaxtonCluster: gather, plan, write status, act.

Thin on purpose: the decisions are in `rotation/ca.py` and `rotation/ring.py`. Each look
(the cluster's status timer) reads the Secrets, asks every node what it has loaded
(`GET /v1/security` through the pod proxy), plans, writes the status, then writes the
Secrets the plan asks for. Every write is idempotent and the planners read their phase from
the Secrets, so a killed operator continues where it was.

Requests are annotations on the CaxtonCluster (`kubectl caxton security rotate-certs`,
`rotate-gossip-key`, `rotate-token` set them). The Secret that a rotation rewrites records
which request it served, in the same write, so a request is carried out once.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import kopf
from caxton_node import pki
from caxton_node.api.tokens import token_id
from caxton_node.gossip.transport import key_id
from cryptography import x509

from caxton_operator import kubeapi
from caxton_operator.config import parse_hours
from caxton_operator.models import CaxtonClusterSpec
from caxton_operator.nodeapi import NodeApi, NodeUnavailable
from caxton_operator.resources import secrets
from caxton_operator.resources.naming import Names
from caxton_operator.rotation import ca, ring

Obj = dict[str, Any]
ROTATE_CERTS = "caxton.dev/rotate-certs"
ROTATE_GOSSIP_KEY = "caxton.dev/rotate-gossip-key"
ROTATE_TOKEN = "caxton.dev/rotate-token"
SERVED = "caxton.dev/rotation-request"  # on a rotated Secret: the request it was written for
TARGET = "caxton.dev/rotation-target"  # on the gossip and token Secrets: the id rotated to
CONFIRM_TIMEOUT = dt.timedelta(minutes=2)  # a member that takes longer is named; the rotation holds
TOKEN_QUIET = 15.0  # seconds nobody may have sent the old token before it is dropped
_ASK = ThreadPoolExecutor(max_workers=8, thread_name_prefix="security-look")


def reports(api: NodeApi, pods: list[str]) -> dict[str, Obj]:
    """What every answering node has loaded; a node that does not answer is left out."""
    def ask(pod: str) -> Obj | None:
        try:
            found = api.json(pod, "GET", "/v1/security", timeout=3.0)
        except NodeUnavailable:
            return None
        return found if isinstance(found, dict) else None

    return {pod: found for pod, found in zip(pods, _ASK.map(ask, pods), strict=True) if found is not None}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _post(body: kopf.Body, events: list[tuple[str, str, str]]) -> None:
    for kind, reason, message in events:
        kopf.event(body, type=kind, reason=reason, message=message)


def _write_status(names: Names, key: str, status: Obj) -> None:
    """Status first, then the action: a kill in between leaves a status that says what comes."""
    path = f"/apis/caxton.dev/v1alpha1/namespaces/{names.namespace}/caxtonclusters/{names.cluster}/status"
    kubeapi.client().patch(path, {"status": {key: status}})


def _annotations(obj: Any) -> dict[str, str]:
    """A stored object's annotations, or a Kopf body's."""
    if isinstance(obj, kopf.Body):
        return dict(obj.metadata.annotations)
    return dict(((obj or {}).get("metadata") or {}).get("annotations") or {})


# -- the CA ------------------------------------------------------------------------------------------------

@dataclass
class Issuer:
    pair: pki.KeyPair | None
    problem: str = ""
    managed: bool = True  # the operator's own CA (not tls.caSecretName)
    served: str = ""  # the rotate-certs request the operator CA was made for
    generation: int = 1


def issuer(spec: CaxtonClusterSpec, names: Names, operator_ca: Callable[[], Obj]) -> Issuer:
    """The CA that should issue the node certificates, and why it cannot if so."""
    if not spec.tls.ca_secret_name:
        stored = operator_ca()
        pair = secrets.ca_keypair(stored)
        return Issuer(pair, pki.ca_problem(pair) or "", True, _annotations(stored).get(SERVED, ""))
    user = kubeapi.get(f"/api/v1/namespaces/{names.namespace}/secrets/{spec.tls.ca_secret_name}")
    if user is None:
        return Issuer(None, f"tls.caSecretName: Secret {spec.tls.ca_secret_name} not found in {names.namespace}; "
                            "create it with ca.crt and ca.key, or clear the field to let the operator run a CA",
                      managed=False)
    try:
        pair = secrets.ca_keypair(user)
    except ValueError as err:
        return Issuer(None, str(err), managed=False)
    problem = pki.ca_problem(pair)
    return Issuer(pair, f"Secret {spec.tls.ca_secret_name}: {problem}" if problem else "", managed=False)


@dataclass
class CertificateLook:
    plan: ca.CaPlan
    not_after: dt.datetime | None
    status: Obj = field(default_factory=dict)


def certificates(spec: CaxtonClusterSpec, names: Names, body: kopf.Body, found: dict[str, Obj],
                 operator_ca: Callable[[], Obj], *, now: dt.datetime | None = None) -> CertificateLook:
    now = now or _now()
    tls_path = f"/api/v1/namespaces/{names.namespace}/secrets/{names.tls}"
    existing = kubeapi.get(tls_path)
    source = issuer(spec, names, operator_ca)
    data = {k: base64.b64decode(v) for k, v in ((existing or {}).get("data") or {}).items()}
    bundle = pki.load_bundle(data.get("ca.crt", b""))
    known = {pki.fingerprint(c): c for c in bundle}
    issuer_cert = source.pair.cert if source.pair is not None and not source.problem else None
    if issuer_cert is not None:
        known.setdefault(pki.fingerprint(issuer_cert), issuer_cert)
    pods = tuple(names.pod(i) for i in range(spec.replicas))
    leaves = {}
    for pod in pods:
        if f"{pod}.crt" in data and f"{pod}.key" in data:
            leaf = x509.load_pem_x509_certificate(data[f"{pod}.crt"])
            by = next((fp for fp, c in known.items() if pki.issued_by(leaf, c)), "")
            leaves[pod] = ca.Leaf(pki.fingerprint(leaf), by, leaf.not_valid_after_utc)
    loaded = {pod: ca.Loaded(frozenset(c["fingerprint"] for c in r["tls"]["trusted"]), r["tls"]["leaf"]["fingerprint"])
              for pod, r in found.items() if r.get("tls")}
    previous: Obj = dict(body.status.get("certificates") or {})
    world = ca.CaWorld(
        now=now, pods=pods,
        issuer=pki.fingerprint(source.pair.cert) if source.pair is not None else "",
        issuer_not_after=source.pair.cert.not_valid_after_utc if source.pair is not None else None,
        operator_managed=source.managed, bundle=tuple(pki.fingerprint(c) for c in bundle), leaves=leaves,
        loaded=loaded, renew_before=dt.timedelta(hours=parse_hours(spec.tls.renew_before)),
        confirm_timeout=CONFIRM_TIMEOUT, previous=previous, problem=source.problem,
        request=_annotations(body).get(ROTATE_CERTS, ""), served_request=source.served)
    plan = ca.plan(world)
    acting = bool(plan.new_ca or plan.bundle is not None or plan.issue)
    status = dict(plan.status)
    if acting and existing is not None:
        _write_status(names, "certificates", status)
    _post(body, plan.events)
    if plan.new_ca:
        fresh = secrets.ca_secret(names, {SERVED: plan.new_ca}, generation=int(status["caGeneration"]) + 1)
        kubeapi.apply(kubeapi.owned(fresh, dict(body)))
    elif (plan.bundle is not None or plan.issue) and source.pair is not None:
        order = plan.bundle if plan.bundle is not None else world.bundle
        written = secrets.node_certificates(spec, names, source.pair, existing,
                                            bundle=[known[fp] for fp in order], issue=plan.issue)
        kubeapi.apply(kubeapi.owned(written, dict(body)))
        data = {k: base64.b64decode(v) for k, v in written["data"].items()}
        renewed = [p for p in plan.issue if p in leaves and leaves[p].issuer == world.issuer]
        if existing is not None and renewed:
            _post(body, [("Normal", "CertificatesRenewed", f"issued node certificates for {', '.join(renewed)}")])
    expiries = [pki.expires_at(data[f"{p}.crt"]) for p in pods if f"{p}.crt" in data]
    return CertificateLook(plan, min(expiries) if expiries else None, status)


# -- gossip key and API token --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Ring:
    """Where a rotated set lives and how its entries are named."""

    what: str
    label: str
    status_key: str
    annotation: str
    secret_name: Callable[[Names], str]
    data_key: str
    ident: Callable[[bytes], str]  # an entry's id, as the nodes report it
    make: Callable[[], bytes]
    reported: Callable[[Obj], tuple[str, ...] | None]


def _gossip_ids(report: Obj) -> tuple[str, ...] | None:
    gossip = report.get("gossip")
    return tuple(gossip["keyIds"]) if gossip else None


def _token_ids(report: Obj) -> tuple[str, ...] | None:
    return tuple(t["id"] for t in (report.get("api") or {}).get("tokens") or ())


GOSSIP_KEY = Ring("gossip key", "GossipKey", "gossipKey", ROTATE_GOSSIP_KEY, lambda n: n.gossip, "key",
                  lambda line: key_id(base64.b64decode(line)), secrets.new_gossip_key, _gossip_ids)
API_TOKEN = Ring("API token", "ApiToken", "apiToken", ROTATE_TOKEN, lambda n: n.token, "token",
                 token_id, secrets.new_token, _token_ids)


def rotate(kind: Ring, spec: CaxtonClusterSpec, names: Names, body: kopf.Body, found: dict[str, Obj], *,
           now: dt.datetime | None = None) -> Obj | None:
    """One look at a gossip key or API token rotation; the status to show, None before the Secret exists."""
    path = f"/api/v1/namespaces/{names.namespace}/secrets/{kind.secret_name(names)}"
    stored = kubeapi.get(path)
    if stored is None:
        return None
    lines = [line.strip().encode() for line in base64.b64decode(
        (stored.get("data") or {}).get(kind.data_key, "")).decode().splitlines() if line.strip()]
    by_id = {kind.ident(line): line for line in lines}
    annotations = _annotations(stored)
    loaded = {pod: ids for pod, r in found.items() if (ids := kind.reported(r)) is not None}
    old_used: dict[str, float | None] | None = None
    if kind is API_TOKEN and len(lines) > 1:
        old = {kind.ident(line) for line in lines[1:]}
        old_used = {}
        for pod, r in found.items():
            ages = [t["lastUsedSecondsAgo"] for t in r["api"]["tokens"]
                    if t["id"] in old and t["lastUsedSecondsAgo"] is not None]
            old_used[pod] = min(ages) if ages else None
    world = ring.RingWorld(
        what=kind.what, label=kind.label, now=now or _now(), pods=tuple(names.pod(i) for i in range(spec.replicas)),
        entries=tuple(by_id), target=annotations.get(TARGET, ""), request=_annotations(body).get(kind.annotation, ""),
        served_request=annotations.get(SERVED, ""), loaded=loaded, confirm_timeout=CONFIRM_TIMEOUT,
        previous=dict(body.status.get(kind.status_key) or {}), old_last_used=old_used, quiet=TOKEN_QUIET)
    plan = ring.plan(world)
    if plan.start or plan.write is not None:
        _write_status(names, kind.status_key, plan.status)
    _post(body, plan.events)
    if plan.start:
        new = kind.make()
        written = [*lines, new]
        annotations.update({SERVED: plan.start, TARGET: kind.ident(new)})
    elif plan.write is not None:
        written = [by_id[i] for i in plan.write]
    if plan.start or plan.write is not None:
        # The entries and the request they serve in one write: a restarted operator sees both or neither.
        keep = {k: v for k, v in annotations.items() if k in (SERVED, TARGET)}
        obj = secrets.secret(names, kind.secret_name(names), {kind.data_key: b"\n".join(written) + b"\n"}, keep)
        kubeapi.apply(kubeapi.owned(obj, dict(body)))
    return plan.status

