"""The rotation planners, table-driven: from what the Secrets hold and what every node reports
it has loaded, to the next action and the status (CA in three phases; gossip key and API token
through add -> primary -> drop)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from caxton_operator.rotation import ca, ring

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(days=60)
PODS = ("demo-0", "demo-1", "demo-2")
OLD, NEW = "a" * 64, "b" * 64


def leaves(issuer: str, *, expires: dt.datetime = LATER, pods: tuple[str, ...] = PODS) -> dict[str, ca.Leaf]:
    return {p: ca.Leaf(f"{issuer[:4]}-{p}", issuer, expires) for p in pods}


def loaded(bundle: tuple[str, ...], issuer: str, pods: tuple[str, ...] = PODS) -> dict[str, ca.Loaded]:
    return {p: ca.Loaded(frozenset(bundle), f"{issuer[:4]}-{p}") for p in pods}


def world(**changes: object) -> ca.CaWorld:
    base = ca.CaWorld(now=NOW, pods=PODS, issuer=OLD, issuer_not_after=NOW + dt.timedelta(days=3650),
                      operator_managed=True, bundle=(OLD,), leaves=leaves(OLD), loaded=loaded((OLD,), OLD),
                      renew_before=dt.timedelta(days=30), confirm_timeout=dt.timedelta(minutes=2),
                      previous={"phase": "Ready", "phaseSince": "2026-06-01T11:00:00Z", "caGeneration": 1,
                                "caFingerprint": OLD})
    return replace(base, **changes)  # type: ignore[arg-type]


lagging = {**loaded((OLD, NEW), OLD), "demo-2": ca.Loaded(frozenset({OLD}), "aaaa-demo-2")}
serving_new = loaded((OLD, NEW), NEW)
CA_CASES = [
    # (what, world, phase, new_ca, bundle written, leaves issued, waiting for)
    ("steady: nothing to do", world(), "Ready", "", None, (), ()),
    ("a new cluster gets its bundle and every leaf", world(bundle=(), leaves={}, loaded={}, previous={}),
     "Ready", "", (OLD,), PODS, ()),
    ("a request makes a fresh operator CA", world(request="r1"), "TrustingBoth", "r1", None, (), PODS),
    ("a request already served does nothing", world(request="r1", served_request="r1"), "Ready", "", None, (), ()),
    ("an operator CA inside renewBefore starts a rotation",
     world(issuer_not_after=NOW + dt.timedelta(days=10)), "TrustingBoth", "renew-aaaaaaaaaaaa", None, (), PODS),
    ("phase 1 starts: the new CA joins the bundle", world(issuer=NEW), "TrustingBoth", "", (OLD, NEW), (), PODS),
    ("phase 1 waits for the member that still trusts only the old CA",
     world(issuer=NEW, bundle=(OLD, NEW), loaded=lagging), "TrustingBoth", "", None, (), ("demo-2",)),
    ("phase 1 waits for a member that does not answer",
     world(issuer=NEW, bundle=(OLD, NEW), loaded={p: v for p, v in loaded((OLD, NEW), OLD).items() if p != "demo-1"}),
     "TrustingBoth", "", None, (), ("demo-1",)),
    ("phase 2 starts once every member trusts both",
     world(issuer=NEW, bundle=(OLD, NEW), loaded=loaded((OLD, NEW), OLD)), "ReissuingLeaves", "", None, PODS, PODS),
    ("phase 2 waits for members still serving the old leaf",
     world(issuer=NEW, bundle=(OLD, NEW), leaves=leaves(NEW), loaded={**serving_new, "demo-0": ca.Loaded(
         frozenset({OLD, NEW}), "aaaa-demo-0")}), "ReissuingLeaves", "", None, (), ("demo-0",)),
    ("phase 3 starts once every member serves its new leaf",
     world(issuer=NEW, bundle=(OLD, NEW), leaves=leaves(NEW), loaded=serving_new), "DroppingOldCA", "", (NEW,), (),
     PODS),
    ("phase 3 waits for members still trusting the old CA",
     world(issuer=NEW, bundle=(NEW,), leaves=leaves(NEW), loaded=serving_new,
           previous={"phase": "DroppingOldCA", "phaseSince": "2026-06-01T11:59:00Z", "caFingerprint": NEW}),
     "DroppingOldCA", "", None, (), PODS),
    ("done when every member trusts only the new CA",
     world(issuer=NEW, bundle=(NEW,), leaves=leaves(NEW), loaded=loaded((NEW,), NEW),
           previous={"phase": "DroppingOldCA", "phaseSince": "2026-06-01T11:59:00Z", "caFingerprint": NEW}),
     "Ready", "", None, (), ()),
    ("a second request waits for the rotation under way",
     world(issuer=NEW, bundle=(OLD, NEW), loaded=lagging, request="r2", served_request="r1"),
     "TrustingBoth", "", None, (), ("demo-2",)),
    ("leaves inside renewBefore are renewed from the same CA without phases",
     world(leaves=leaves(OLD, expires=NOW + dt.timedelta(days=5))), "Ready", "", None, PODS, ()),
    ("leaves that end with a short-lived CA are not renewed again and again",
     world(operator_managed=False, issuer_not_after=NOW + dt.timedelta(hours=2),
           leaves=leaves(OLD, expires=NOW + dt.timedelta(hours=2))), "Ready", "", None, (), ()),
    ("a scaled-up ordinal gets its leaf at once, even mid-rotation",
     world(issuer=NEW, bundle=(OLD, NEW), pods=(*PODS, "demo-3"), loaded=lagging), "TrustingBoth", "", None,
     ("demo-3",), ("demo-2", "demo-3")),
    ("a refused user CA changes nothing", world(issuer=NEW, operator_managed=False,
                                                problem="the private key does not match the certificate"),
     "Refused", "", None, (), ()),
    ("a user CA is never replaced by the operator", world(operator_managed=False, request="r1"), "Ready", "", None,
     (), ()),
]


@pytest.mark.parametrize(("what", "given", "phase", "new_ca", "bundle", "issue", "waiting"), CA_CASES,
                         ids=[c[0] for c in CA_CASES])
def test_ca_planner(what: str, given: ca.CaWorld, phase: str, new_ca: str, bundle: tuple[str, ...] | None,
                    issue: tuple[str, ...], waiting: tuple[str, ...]) -> None:
    result = ca.plan(given)
    assert (result.phase, result.new_ca, result.bundle, tuple(sorted(result.issue)), result.waiting_for) == (
        phase, new_ca, bundle, tuple(sorted(issue)), waiting), result.message
    assert result.status["phase"] == phase and result.status["waitingFor"] == list(waiting)


def test_a_member_past_the_timeout_is_named_and_the_rotation_holds() -> None:
    waiting = world(issuer=NEW, bundle=(OLD, NEW), loaded=lagging,
                    previous={"phase": "TrustingBoth", "phaseSince": "2026-06-01T11:50:00Z", "caFingerprint": NEW})
    result = ca.plan(waiting)
    assert result.held and result.bundle is None and result.issue == ()
    assert "demo-2" in result.message and "did not confirm" in result.message
    assert [e[1] for e in result.events] == ["CARotationHeld"]
    assert ca.plan(replace(waiting, previous={**waiting.previous, "held": True})).events == []  # posted once
    assert not ca.plan(replace(waiting, now=NOW - dt.timedelta(minutes=9))).held  # inside the timeout


def test_status_names_old_and_new_ca_and_counts_generations() -> None:
    started = ca.plan(world(issuer=NEW))
    assert started.status["caGeneration"] == 2
    assert (started.status["oldCaFingerprint"], started.status["newCaFingerprint"]) == (OLD, NEW)
    assert [e[1] for e in started.events] == ["CARotationTrustingBoth"]
    assert {m["name"]: m["confirmed"] for m in started.status["members"]} == dict.fromkeys(PODS, False)
    again = ca.plan(world(issuer=NEW, bundle=(OLD, NEW), loaded=lagging, previous=started.status))
    assert again.status["caGeneration"] == 2 and again.status["phaseSince"] == started.status["phaseSince"]
    done = ca.plan(world(issuer=NEW, bundle=(NEW,), leaves=leaves(NEW), loaded=loaded((NEW,), NEW),
                         previous={**started.status, "phase": "DroppingOldCA"}))
    assert [e[1] for e in done.events] == ["CARotated"] and done.status["oldCaFingerprint"] == ""
    refused = ca.plan(world(issuer=NEW, operator_managed=False, problem="not a CA"))
    assert refused.status["caFingerprint"] == OLD and [e[1] for e in refused.events] == ["CARefused"]
    assert "not a CA" in refused.message


K1, K2 = "k1k1k1k1", "k2k2k2k2"


def ring_world(entries: tuple[str, ...], loaded_ids: tuple[str, ...] | dict[str, tuple[str, ...]], **changes: object,
               ) -> ring.RingWorld:
    reports = loaded_ids if isinstance(loaded_ids, dict) else dict.fromkeys(PODS, loaded_ids)
    base = ring.RingWorld(what="gossip key", label="GossipKey", now=NOW, pods=PODS, entries=entries, target=K2,
                          request="r1", served_request="r1", loaded=reports, confirm_timeout=dt.timedelta(minutes=2),
                          previous={"phase": "Adding", "phaseSince": "2026-06-01T11:59:00Z"})
    return replace(base, **changes)  # type: ignore[arg-type]


RING_CASES = [
    ("steady", ring_world((K1,), (K1,), target="", request="", served_request="", previous={"phase": "Ready"}),
     "Ready", "", None, ()),
    ("a request adds a new entry", ring_world((K1,), (K1,), target="", request="r1", served_request="",
                                              previous={"phase": "Ready"}), "Adding", "r1", None, PODS),
    ("add waits for a member that has not loaded both",
     ring_world((K1, K2), {**dict.fromkeys(PODS, (K1, K2)), "demo-1": (K1,)}), "Adding", "", None, ("demo-1",)),
    ("every member accepts both: promote", ring_world((K1, K2), (K1, K2)), "Promoting", "", (K2, K1), PODS),
    ("promote waits for a member still sealing with the old one",
     ring_world((K2, K1), {**dict.fromkeys(PODS, (K2, K1)), "demo-0": (K1, K2)}), "Promoting", "", None, ("demo-0",)),
    ("every member uses the new one: drop", ring_world((K2, K1), (K2, K1)), "Dropping", "", (K2,), PODS),
    ("drop waits", ring_world((K2,), {**dict.fromkeys(PODS, (K2,)), "demo-2": (K2, K1)},
                              previous={"phase": "Dropping", "phaseSince": "2026-06-01T11:59:00Z"}),
     "Dropping", "", None, ("demo-2",)),
    ("done", ring_world((K2,), (K2,), previous={"phase": "Dropping"}), "Ready", "", None, ()),
    ("a served request is not started again", ring_world((K2,), (K2,), previous={"phase": "Ready"}), "Ready", "", None,
     ()),
    ("a token still sent by a client holds the drop",
     ring_world((K2, K1), (K2, K1), old_last_used={"demo-0": None, "demo-1": 3.0, "demo-2": 40.0}, quiet=10.0),
     "Promoting", "", None, ("demo-1",)),
    ("a token nobody sent for the quiet time is dropped",
     ring_world((K2, K1), (K2, K1), old_last_used={"demo-0": None, "demo-1": 12.0, "demo-2": 40.0}, quiet=10.0),
     "Dropping", "", (K2,), PODS),
]


@pytest.mark.parametrize(("what", "given", "phase", "start", "write", "waiting"), RING_CASES,
                         ids=[c[0] for c in RING_CASES])
def test_ring_planner(what: str, given: ring.RingWorld, phase: str, start: str, write: tuple[str, ...] | None,
                      waiting: tuple[str, ...]) -> None:
    result = ring.plan(given)
    assert (result.phase, result.start, result.write, result.waiting_for) == (phase, start, write, waiting), \
        result.message


def test_ring_rotation_events_and_hold() -> None:
    done = ring.plan(ring_world((K2,), (K2,), previous={"phase": "Dropping"}))
    assert [e[1] for e in done.events] == ["GossipKeyRotated"]
    held = ring.plan(ring_world((K1, K2), {**dict.fromkeys(PODS, (K1, K2)), "demo-1": (K1,)},
                                previous={"phase": "Adding", "phaseSince": "2026-06-01T11:00:00Z"}))
    assert held.held and "demo-1" in held.message and held.write is None
    assert [e[1] for e in held.events] == ["GossipKeyRotationHeld"]
