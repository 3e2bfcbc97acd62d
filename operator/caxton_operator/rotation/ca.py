"""CA rotation without a failed handshake, and without a restart.

The trust bundle (`ca.crt` of the node-certificate Secret) and the leaves are moved in
three phases, each confirmed by every member from what it has loaded, never from what
was written:

1. TrustingBoth: the bundle holds the old CA(s) and the new one; every node trusts both.
2. ReissuingLeaves: every leaf is re-issued from the new CA; every node serves its new leaf.
3. DroppingOldCA: the old CA leaves the bundle; every node trusts only the new one.

The phase is not stored but read from the Secrets (is the issuing CA in the bundle, who
issued each leaf, is anything else in the bundle); the status only remembers since when a
phase waits (to name the members that hold it past the timeout) and the CA generation. A
member that does not confirm holds the rotation: it never moves on with part of the
cluster unconfirmed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

READY, TRUSTING_BOTH, REISSUING, DROPPING, REFUSED, MISSING = (
    "Ready", "TrustingBoth", "ReissuingLeaves", "DroppingOldCA", "Refused", "CAMissing")
ROTATING = (TRUSTING_BOTH, REISSUING, DROPPING)


@dataclass(frozen=True)
class Leaf:
    fingerprint: str
    issuer: str  # fingerprint of the CA that signed it; "" if none we know
    not_after: dt.datetime


@dataclass(frozen=True)
class Loaded:
    """What one node reports it has loaded: the CAs it trusts and the leaf it presents."""

    trusted: frozenset[str]
    leaf: str


@dataclass(frozen=True)
class CaWorld:
    now: dt.datetime
    pods: tuple[str, ...]  # the members that must confirm: every ordinal of spec.replicas
    issuer: str  # fingerprint of the CA that should issue leaves ("" when it is missing)
    issuer_not_after: dt.datetime | None
    operator_managed: bool  # False: the user's CA (tls.caSecretName); we cannot make a new one
    bundle: tuple[str, ...]  # CA fingerprints in the Secret the nodes mount
    leaves: dict[str, Leaf]  # pod -> its leaf in that Secret
    loaded: dict[str, Loaded]  # pod -> what it reports (absent: it did not answer)
    renew_before: dt.timedelta
    confirm_timeout: dt.timedelta
    previous: dict[str, Any] = field(default_factory=dict)  # status.certificates as last written
    problem: str = ""  # why the issuing CA is refused (a user CA that is not a CA, a key that does not match)
    request: str = ""  # the rotate-certs annotation's value
    served_request: str = ""  # the request the operator CA Secret was made for


@dataclass
class CaPlan:
    phase: str
    new_ca: str = ""  # make a fresh operator CA for this request
    bundle: tuple[str, ...] | None = None  # write this trust bundle
    issue: tuple[str, ...] = ()  # (re)issue these pods' leaves from the issuer
    waiting_for: tuple[str, ...] = ()
    held: bool = False  # waiting past the timeout
    message: str = ""
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    status: dict[str, Any] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.phase == READY and not self.waiting_for


def short(fingerprint: str) -> str:
    return fingerprint[:16]


def _in_sync(world: CaWorld, pod: str) -> bool:
    loaded, leaf = world.loaded.get(pod), world.leaves.get(pod)
    return loaded is not None and leaf is not None and loaded.trusted == frozenset(world.bundle) \
        and loaded.leaf == leaf.fingerprint


def plan(world: CaWorld) -> CaPlan:
    previous = world.previous
    if not world.issuer:
        result = CaPlan(MISSING, message=world.problem or "the CA is missing")
    elif world.problem:
        result = CaPlan(REFUSED, message=f"the new CA is refused: {world.problem}; the cluster keeps its current "
                                         "CA until a usable one is given")
    else:
        result = _plan(world)
    return _finish(world, result, previous)


def _plan(world: CaWorld) -> CaPlan:
    issuer, pods = world.issuer, world.pods
    missing = tuple(p for p in pods if p not in world.leaves)
    stale = tuple(p for p in pods if p in world.leaves and world.leaves[p].issuer != issuer)
    # Inside renewBefore, unless a new leaf would expire no later (leaves end with their CA): no churn.
    last = world.issuer_not_after - dt.timedelta(minutes=1) if world.issuer_not_after else None
    expiring = tuple(p for p in pods if p in world.leaves and world.leaves[p].issuer == issuer
                     and world.leaves[p].not_after - world.now <= world.renew_before
                     and (last is None or world.leaves[p].not_after < last))
    old = tuple(fp for fp in world.bundle if fp != issuer)
    unconfirmed = tuple(p for p in pods if not _in_sync(world, p))

    if not world.bundle:  # a new cluster: nothing to keep working, issue everything at once
        return CaPlan(READY, bundle=(issuer,), issue=pods, message="issuing the first node certificates")
    if issuer not in world.bundle:
        return CaPlan(TRUSTING_BOTH, bundle=(*world.bundle, issuer), issue=missing, waiting_for=pods,
                      message=f"phase 1/3: adding CA {short(issuer)} to the trust bundle next to "
                              f"{', '.join(short(f) for f in old)}")
    if stale:
        if unconfirmed:
            return CaPlan(TRUSTING_BOTH, issue=missing, waiting_for=unconfirmed,
                          message=f"phase 1/3: waiting for {', '.join(unconfirmed)} to trust both CAs")
        return CaPlan(REISSUING, issue=(*stale, *missing), waiting_for=pods,
                      message=f"phase 2/3: every node trusts both CAs; re-issuing {len(stale)} node "
                              f"certificate(s) from CA {short(issuer)}")
    if old:
        if unconfirmed:
            return CaPlan(REISSUING, issue=(*missing, *expiring), waiting_for=unconfirmed,
                          message=f"phase 2/3: waiting for {', '.join(unconfirmed)} to serve the certificate "
                                  f"issued by CA {short(issuer)}")
        return CaPlan(DROPPING, bundle=(issuer,), issue=expiring, waiting_for=pods,
                      message=f"phase 3/3: every node serves its new certificate; dropping CA(s) "
                              f"{', '.join(short(f) for f in old)} from the trust bundle")
    renew = (*missing, *expiring)
    if world.previous.get("phase") == DROPPING and unconfirmed:
        return CaPlan(DROPPING, issue=renew, waiting_for=unconfirmed,
                      message=f"phase 3/3: waiting for {', '.join(unconfirmed)} to trust only CA {short(issuer)}")
    pending = world.request and world.request != world.served_request
    renew_ca = world.issuer_not_after is not None and world.issuer_not_after - world.now <= world.renew_before
    if world.operator_managed and (pending or renew_ca):
        why = f"requested ({world.request})" if pending else \
            f"the operator CA expires {world.issuer_not_after:%Y-%m-%dT%H:%M:%SZ}, inside renewBefore"
        return CaPlan(TRUSTING_BOTH, new_ca=world.request if pending else f"renew-{world.issuer[:12]}",
                      issue=renew, waiting_for=pods, message=f"starting a CA rotation: {why}")
    if pending and not world.operator_managed:
        return CaPlan(READY, issue=renew, message="rotate-certs without files renews only an operator CA; this "
                                                  "cluster uses tls.caSecretName: replace that Secret, or "
                                                  "run rotate-certs with --ca-cert and --ca-key")
    if renew_ca:
        return CaPlan(READY, issue=renew, message=f"the CA in tls.caSecretName expires "
                                                  f"{world.issuer_not_after:%Y-%m-%dT%H:%M:%SZ}: replace it")
    return CaPlan(READY, issue=renew, waiting_for=unconfirmed if world.loaded else (),
                  message=f"every node trusts CA {short(issuer)} and serves a certificate it issued" if not
                  unconfirmed else f"certificates written; waiting for {', '.join(unconfirmed)} to load them")


def _finish(world: CaWorld, result: CaPlan, previous: dict[str, Any]) -> CaPlan:
    """Status (with since-when and the CA generation) and the Events of a transition."""
    now = f"{world.now:%Y-%m-%dT%H:%M:%SZ}"
    was = previous.get("phase")
    since = str(previous.get("phaseSince") or now) if was == result.phase else now
    generation = int(previous.get("caGeneration") or 1)
    known = previous.get("newCaFingerprint") or previous.get("caFingerprint")
    if world.issuer and known and world.issuer != known and result.phase not in (REFUSED, MISSING):
        generation += 1
    waited = world.now - dt.datetime.strptime(since, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    rotating = result.phase in ROTATING
    if result.waiting_for and rotating and waited > world.confirm_timeout and not result.bundle and not result.new_ca:
        result.held = True
        result.message = (f"held: {', '.join(result.waiting_for)} did not confirm within {world.confirm_timeout} "
                          f"({result.message}); the rotation waits for every member. Check that the pod runs and "
                          "mounts the certificate Secret")
    old = [fp for fp in world.bundle if fp != world.issuer]
    result.status = {
        "phase": result.phase, "phaseSince": since, "caGeneration": generation,
        "caFingerprint": world.issuer if world.issuer and result.phase != REFUSED
        else previous.get("caFingerprint", ""),
        "oldCaFingerprint": world.issuer if result.new_ca else old[0] if rotating and old else
        previous.get("oldCaFingerprint", "") if rotating else "",
        "newCaFingerprint": world.issuer if rotating and not result.new_ca else "",
        "waitingFor": list(result.waiting_for), "held": result.held, "message": result.message,
        # Confirmed against what this look writes: a member is behind until it loads it.
        "members": [{"name": pod, "confirmed": _in_sync(world, pod) and pod not in result.issue
                     and (result.bundle is None or frozenset(result.bundle) == frozenset(world.bundle)),
                     "trusted": sorted(short(f) for f in world.loaded[pod].trusted) if pod in world.loaded else [],
                     "serving": short(world.loaded[pod].leaf) if pod in world.loaded else "",
                     "answered": pod in world.loaded} for pod in world.pods],
    }
    if result.phase != was and was is not None:
        kind = "Warning" if result.phase in (REFUSED, MISSING) else "Normal"
        reason = {TRUSTING_BOTH: "CARotationTrustingBoth", REISSUING: "CARotationReissuing",
                  DROPPING: "CARotationDroppingOld", REFUSED: "CARefused", MISSING: "CAMissing"}.get(
            result.phase, "CARotated" if was in ROTATING else "CertificatesReady")
        result.events.append((kind, reason, result.message))
    if result.held and not previous.get("held"):
        result.events.append(("Warning", "CARotationHeld", result.message))
    return result
