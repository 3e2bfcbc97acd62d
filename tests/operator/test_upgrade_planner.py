"""The upgrade planner, transition by transition: pure logic, so every case is a table row.

A world is five pods of cluster `demo`; a pod's revision is named after the template it
runs (version + restart token), as the StatefulSet controller's hashes would be.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from caxton_operator.models import CaxtonUpgradeSpec
from caxton_operator.upgrade.planner import (
    Acquire,
    DeletePod,
    Drain,
    Release,
    SaveBaseline,
    SetClusterVersion,
    SetPartition,
    SetTemplate,
    Settings,
    Undrain,
    iso,
    plan,
)
from caxton_operator.upgrade.versions import is_downgrade
from caxton_operator.upgrade.world import (
    ClusterView,
    MemberView,
    MetricSample,
    PodView,
    StatefulSetView,
    World,
)

NOW = 1_800_000_000.0
ME = Settings("up")
BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.1, 1.0, float("inf"))


def rev(version: str, token: str = "") -> str:
    return f"rev-{version}{token}"


def spec(**over: Any) -> CaxtonUpgradeSpec:
    raw: dict[str, Any] = {"clusterRef": {"name": "demo"}, "version": "1.3.0",
                           "canary": {"duration": "20s", "maxErrorRate": "1%", "maxP99Latency": "25ms",
                                      "minMessages": 100},
                           "batchSize": 2}
    raw.update(over)
    return CaxtonUpgradeSpec.model_validate(raw)


def pods(new: set[int] | frozenset[int] = frozenset(), *, n: int = 5, new_version: str = "1.3.0", token: str = "",
         **per_pod: dict[str, Any]) -> tuple[PodView, ...]:
    out = []
    for i in range(n):
        version = new_version if i in new else "1.2.0"
        fields: dict[str, Any] = {"name": f"demo-{i}", "ordinal": i,
                                  "revision": rev(version, token if i in new else ""), "version": version,
                                  "ready": True, "agents": 2, "backlog": 0}
        fields.update(per_pod.get(f"p{i}", {}))
        out.append(PodView(**fields))
    return tuple(out)


def members(pod_views: tuple[PodView, ...], **states: str) -> tuple[MemberView, ...]:
    return tuple(MemberView(p.name, states.get(p.name.replace("-", ""), "alive"), p.version) for p in pod_views)


def sample(handled: float, errors: float = 0, crashes: float = 0, slow: float = 0) -> MetricSample:
    """`handled` messages, `slow` of them above 25 ms; `errors` dead letters, `crashes` agent traps."""
    fast = handled - slow
    buckets = tuple((le, fast if le <= 0.025 else handled) for le in BUCKETS)
    return MetricSample(handled=handled, buckets=buckets, crashes=crashes, dead_letters=errors)


def world(pod_views: tuple[PodView, ...] | None = None, *, version: str = "1.3.0", token: str = "",
          partition: int = 5, holder: str = "up", holder_active: bool = True, cluster_version: str = "1.2.0",
          now: float = NOW, **over: Any) -> World:
    pod_views = pods() if pod_views is None else pod_views
    current = rev("1.2.0") if any(p.version == "1.2.0" for p in pod_views) else rev(version, token)
    fields: dict[str, Any] = {
        "now": now,
        "cluster": ClusterView("demo", cluster_version, 5, holder=holder, holder_active=holder_active),
        "sts": StatefulSetView(5, version, token, partition, rev(version, token), current),
        "pods": pod_views, "members": members(pod_views), "views_agree": True,
    }
    fields.update(over)
    return World(**fields)


def status(phase: str, **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"phase": phase, "fromVersion": "1.2.0", "fromRestartToken": "", "toVersion": "1.3.0",
                            "startedAt": iso(NOW - 60), "canaryPod": "demo-4", "stepSince": iso(NOW - 5)}
    base.update(over)
    return base


def gate(result_status: dict[str, Any], name: str) -> dict[str, Any]:
    return next(g for g in result_status["gates"] if g["name"] == name)


def reasons(decision: Any) -> list[str]:
    return [e.reason for e in decision.events]


# -- versions -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("current", "target", "down"), [
    ("1.2.0", "1.3.0", False), ("1.3.0", "1.2.0", True), ("1.3.0", "1.3.0-rc.1", True),
    ("1.3.0-rc.1", "1.3.0", False), ("1.10.0", "1.9.0", True), ("v1.2.0", "1.2.1", False),
    ("1.3.0-rc.2", "1.3.0-rc.10", False),
])
def test_downgrades_follow_semver_precedence(current: str, target: str, down: bool) -> None:
    assert is_downgrade(current, target) is down


# -- Pending ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("the_world", "the_spec", "phase", "reason", "actions"), [
    pytest.param(world(cluster=None, version="1.2.0", holder=""), spec(), "Pending", "ClusterNotFound", [],
                 id="no-cluster"),
    pytest.param(world(version="1.2.0", holder="other", partition=0), spec(), "Pending", "WaitingForUpgrade", [],
                 id="second-upgrade-waits"),
    pytest.param(world(version="1.2.0", holder="", partition=0), spec(version="1.1.0"), "Failed",
                 "DowngradeRefused", [], id="downgrade-refused"),
    pytest.param(world(version="1.2.0", holder="", partition=0), spec(version="1.2.0"), "Succeeded",
                 "AlreadyAtVersion", [], id="already-there"),
    pytest.param(world(pods(p1={"ready": False}), version="1.2.0", holder="", partition=0), spec(), "Pending",
                 "ClusterNotHealthy", [], id="unhealthy-cluster-waits"),
    pytest.param(world(version="1.2.0", holder="", partition=0), spec(), "Pending", "Starting", [Acquire()],
                 id="takes-the-cluster-first"),
    pytest.param(world(version="1.2.0", holder="other", holder_active=False, partition=0), spec(), "Pending",
                 "Starting", [Acquire()], id="a-finished-holder-does-not-block"),
    pytest.param(world(version="1.2.0", holder="up", partition=0), spec(), "Canary", "DrainingCanary",
                 [SetTemplate("1.3.0", "", 5)], id="starts-with-partition-at-the-top"),
    pytest.param(world(version="1.2.0", holder="", partition=0), spec(version="1.1.0", allowDowngrade=True),
                 "Pending", "Starting", [Acquire()], id="downgrade-allowed-explicitly"),
])
def test_pending(the_world: World, the_spec: CaxtonUpgradeSpec, phase: str, reason: str, actions: list[Any]) -> None:
    decision = plan(ME, the_spec, {}, the_world)
    assert decision.status["phase"] == phase
    assert decision.status["reason"] == reason, decision.status["message"]
    assert decision.actions == actions


def test_second_upgrade_names_the_first_and_downgrade_says_how_to_allow_it() -> None:
    waiting = plan(ME, spec(), {}, world(version="1.2.0", holder="first", partition=0)).status
    assert "CaxtonUpgrade first" in waiting["message"]
    assert next(c for c in waiting["conditions"] if c["type"] == "Progressing")["reason"] == "WaitingForUpgrade"
    refused = plan(ME, spec(version="1.1.0"), {}, world(version="1.2.0", holder="", partition=0))
    assert "allowDowngrade" in refused.status["message"] and reasons(refused) == ["DowngradeRefused"]
    # A refused upgrade never held the cluster: it stays refused and does nothing.
    again = plan(ME, spec(version="1.1.0"), refused.status, world(version="1.2.0", holder="", partition=0))
    assert again.actions == [] and again.status["phase"] == "Failed"


def test_start_records_where_it_came_from() -> None:
    decision = plan(ME, spec(), {"phase": "Pending"}, world(version="1.2.0", holder="up", partition=0))
    s = decision.status
    assert (s["fromVersion"], s["toVersion"], s["canaryPod"], s["step"]) == ("1.2.0", "1.3.0", "demo-4", "Drain")
    assert reasons(decision) == ["UpgradeStarted"] and "demo-4" in decision.events[0].message


# -- Canary -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("step", "the_world", "next_step", "reason", "actions"), [
    pytest.param("Drain", world(), "Drain", "DrainingCanary", [Drain(("demo-4",))], id="drains-the-canary"),
    pytest.param("Drain", world(pods(p4={"agents": 0, "backlog": 3})), "Drain", "DrainingCanary",
                 [Drain(("demo-4",))], id="waits-for-the-backlog"),
    pytest.param("Drain", world(pods(p4={"agents": 0})), "Restart", "RestartingCanary", [SetPartition(4)],
                 id="drained-canary-is-let-through"),
    pytest.param("Drain", world(pods({4}, p4={"ready": False}), partition=4), "Wait", "WaitingForCanary", [],
                 id="already-restarted-is-not-drained-again"),
    pytest.param("Restart", world(pods(p4={"agents": 0}), partition=4), "Restart", "RestartingCanary", [],
                 id="partition-set-once"),
    pytest.param("Wait", world(pods({4}, p4={"ready": False}), partition=4), "Wait", "WaitingForCanary", [],
                 id="waits-for-ready"),
    pytest.param("Drain", world(version="1.2.0", partition=0), "Drain", "UpdatingTemplate",
                 [SetTemplate("1.3.0", "", 5)], id="template-first"),
])
def test_canary_steps(step: str, the_world: World, next_step: str, reason: str, actions: list[Any]) -> None:
    decision = plan(ME, spec(), status("Canary", step=step), the_world)
    assert decision.status["phase"] == "Canary"
    assert (decision.status["step"], decision.status["reason"]) == (next_step, reason), decision.status["message"]
    assert decision.actions == actions


def test_a_ready_canary_gets_agents_back_and_is_held() -> None:
    the_world = world(pods({4}, p4={"agents": 0}), partition=4, metrics={"demo-4": sample(0)})
    decision = plan(ME, spec(), status("Canary", step="Wait"), the_world)
    assert decision.status["phase"] == "Monitoring"
    assert decision.actions == [Undrain(("demo-4",)), SaveBaseline({"demo-4": sample(0)})]
    assert decision.status["monitoringSince"] == iso(NOW)
    assert reasons(decision) == ["CanaryUpgraded"]
    assert gate(decision.status, "CanaryPodReady")["state"] == "Passing"


def test_without_a_canary_hold_it_rolls_on() -> None:
    decision = plan(ME, spec(canary={"duration": "0s"}), status("Canary", step="Wait"),
                    world(pods({4}), partition=4))
    assert decision.status["phase"] == "Rolling" and decision.actions == [Undrain(("demo-4",))]


def test_a_canary_on_an_old_member_version_is_not_ready() -> None:
    the_pods = pods({4})
    stale = tuple(dataclasses.replace(m, version="1.2.0") if m.name == "demo-4" else m for m in members(the_pods))
    decision = plan(ME, spec(), status("Canary", step="Wait"), world(the_pods, partition=4, members=stale))
    assert decision.status["phase"] == "Canary"
    assert "demo-4 reports 1.2.0" in gate(decision.status, "MembersAlive")["message"]


# -- Monitoring -----------------------------------------------------------------------------------------------

def monitoring(elapsed: float, canary: MetricSample, *, requests: frozenset[str] = frozenset(),
               the_spec: CaxtonUpgradeSpec | None = None, **over: Any) -> Any:
    the_pods = over.pop("the_pods", pods({4}))
    the_world = world(the_pods, partition=4, requests=requests,
                      metrics={"demo-4": canary, "demo-0": sample(5000, errors=1)},
                      baseline={"demo-4": sample(0), "demo-0": sample(1000)}, **over)
    return plan(ME, the_spec or spec(), status("Monitoring", step="Hold", monitoringSince=iso(NOW - elapsed)),
                the_world)


def test_monitoring_holds_until_the_duration_has_passed() -> None:
    decision = monitoring(5, sample(500))
    assert decision.status["phase"] == "Monitoring" and decision.actions == []
    assert decision.status["healthySince"] == iso(NOW)
    assert "5s of 20s" in decision.status["message"]


def test_too_little_data_is_inconclusive_not_passed() -> None:
    decision = monitoring(60, sample(40))
    assert decision.status["phase"] == "Monitoring"
    error_rate = gate(decision.status, "ErrorRate")
    assert error_rate["state"] == "Inconclusive" and "40 of 100 messages" in error_rate["message"]
    assert gate(decision.status, "P99Latency")["state"] == "Inconclusive"
    assert "healthySince" not in decision.status


def test_a_healthy_canary_is_promoted_after_the_hold() -> None:
    decision = monitoring(21, sample(500))
    assert decision.status["phase"] == "Rolling" and reasons(decision) == ["CanaryPromoted"]
    assert all(g["state"] == "Passing" for g in decision.status["gates"])
    error_rate = gate(decision.status, "ErrorRate")
    assert error_rate["observed"] == "0.00% (0/500)" and error_rate["oldNodes"] == "0.03%"


def test_promote_ends_the_hold_early() -> None:
    decision = monitoring(3, sample(10), requests=frozenset({"promote"}))
    assert decision.status["phase"] == "Rolling" and "by request" in decision.events[0].message


@pytest.mark.parametrize(("canary", "failed", "observed"), [
    pytest.param(sample(400, errors=40), "ErrorRate", "10.00% (40/400)", id="error-rate"),
    pytest.param(sample(400, slow=20), "P99Latency", "<= 100ms over 400 messages", id="latency"),
    pytest.param(sample(400, crashes=1), "NoCrashes", "1 agent crash(es); pod restarts: 0", id="agent-crash"),
])
def test_a_failing_gate_rolls_back_and_names_itself(canary: MetricSample, failed: str, observed: str) -> None:
    decision = monitoring(5, canary)
    assert decision.status["phase"] == "RollingBack"
    names = [g["name"] for g in decision.status["failedGates"]]
    assert failed in names
    assert next(g for g in decision.status["failedGates"] if g["name"] == failed)["observed"] == observed
    assert decision.actions == [SetTemplate("1.2.0", "", 5)]
    assert reasons(decision) == ["RollbackStarted"] and failed in decision.events[0].message


def test_without_auto_rollback_a_failure_holds() -> None:
    decision = monitoring(5, sample(400, errors=40), the_spec=spec(autoRollback=False))
    assert decision.status["phase"] == "Failed" and decision.actions == []
    assert reasons(decision) == ["UpgradeFailed"] and "rollback" in decision.status["message"]
    # Failed holds the cluster until a rollback is asked for.
    held = plan(ME, spec(autoRollback=False), decision.status, world(pods({4}), partition=4))
    assert held.status["phase"] == "Failed" and held.actions == []
    asked = plan(ME, spec(autoRollback=False), decision.status,
                 world(pods({4}), partition=4, requests=frozenset({"rollback"})))
    assert asked.status["phase"] == "RollingBack" and asked.actions[0] == SetTemplate("1.2.0", "", 5)


def test_a_canary_whose_node_restarted_fails_no_crashes() -> None:
    decision = monitoring(5, sample(10), the_pods=pods({4}, p4={"restarts": 1}))
    assert decision.status["phase"] == "RollingBack"
    assert "NoCrashes" in [g["name"] for g in decision.status["failedGates"]]


# -- crash-looping canary and rollback --------------------------------------------------------------------------

def test_a_crash_looping_canary_is_rolled_back_and_deleted() -> None:
    looping = pods({4}, p4={"ready": False, "crash_looping": True, "restarts": 3, "agents": None})
    first = plan(ME, spec(), status("Canary", step="Wait"), world(looping, partition=4))
    assert first.status["phase"] == "RollingBack"
    assert first.status["failedGates"][0]["name"] == "CanaryPodReady"
    assert "3 restart(s)" in first.status["failedGates"][0]["observed"]
    assert first.actions == [SetTemplate("1.2.0", "", 5)]
    # The template is back on 1.2.0: the StatefulSet's update revision is the old one again.
    reverted = world(looping, version="1.2.0", partition=5)
    second = plan(ME, spec(), first.status, reverted)
    assert second.actions == [SetPartition(4), DeletePod("demo-4")]
    back = world(pods(), version="1.2.0", partition=4)
    done = plan(ME, spec(), second.status, back)
    assert done.status["phase"] == "RolledBack"
    assert done.actions == [SetPartition(0), Undrain(tuple(f"demo-{i}" for i in range(5))), Release()]
    assert reasons(done) == ["RolledBack"] and "CanaryPodReady" in done.events[0].message


def test_rollback_drains_serving_pods_before_restarting_them() -> None:
    the_pods = pods({3, 4})
    decision = plan(ME, spec(), status("RollingBack", step="Revert", rollbackReason="asked"),
                    world(the_pods, version="1.2.0", partition=5))
    assert decision.actions == [Drain(("demo-4", "demo-3"))]
    drained = pods({3, 4}, p3={"agents": 0}, p4={"agents": 0})
    decision = plan(ME, spec(), decision.status, world(drained, version="1.2.0", partition=5))
    assert decision.actions == [SetPartition(3)]


def test_an_implicit_upgrade_rolled_back_puts_the_cluster_version_back() -> None:
    implicit = Settings("demo-to-1-3-0", implicit=True)
    decision = plan(implicit, spec(), status("RollingBack", step="Revert"),
                    world(pods(), version="1.2.0", partition=0, holder="demo-to-1-3-0", cluster_version="1.3.0"))
    assert decision.status["phase"] == "RolledBack"
    assert SetClusterVersion("1.2.0") in decision.actions
    assert decision.actions.index(SetClusterVersion("1.2.0")) < decision.actions.index(Release())


# -- Rolling ------------------------------------------------------------------------------------------------------

def test_rolling_walks_down_in_batches_capped_by_quorum() -> None:
    the_world = world(pods({4}), partition=4)
    decision = plan(ME, spec(batchSize=5), status("Rolling", batch=[]), the_world)
    assert decision.status["batch"] == ["demo-2", "demo-3"]  # 5 nodes, quorum 3: at most 2 down
    assert decision.actions == [Drain(("demo-2", "demo-3"))] and reasons(decision) == ["BatchStarted"]


@pytest.mark.parametrize(("step", "the_pods", "partition", "next_step", "actions"), [
    pytest.param("Drain", pods({4}, p2={"agents": 0}, p3={"agents": 0}), 4, "Restart", [SetPartition(2)],
                 id="drained-batch-let-through"),
    pytest.param("Restart", pods({3, 4}, p2={"agents": 0}), 2, "Restart", [], id="partition-not-repeated"),
    pytest.param("Restart", pods({2, 3, 4}, p2={"ready": False}), 2, "Wait", [], id="restarted-wait-ready"),
    pytest.param("Wait", pods({2, 3, 4}), 2, "", [Undrain(("demo-2", "demo-3"))], id="batch-done"),
])
def test_rolling_steps(step: str, the_pods: tuple[PodView, ...], partition: int, next_step: str,
                       actions: list[Any]) -> None:
    decision = plan(ME, spec(), status("Rolling", step=step, batch=["demo-2", "demo-3"]),
                    world(the_pods, partition=partition))
    assert decision.status["step"] == next_step, decision.status["message"]
    assert decision.actions == actions


def test_no_new_batch_until_every_member_is_alive_and_gossip_agrees() -> None:
    the_pods = pods({2, 3, 4})
    not_alive = plan(ME, spec(), status("Rolling", batch=[]),
                     world(the_pods, partition=2, members=members(the_pods, demo3="suspect")))
    assert not_alive.actions == [] and not_alive.status["reason"] == "WaitingForGates"
    split = plan(ME, spec(), status("Rolling", batch=[]), world(the_pods, partition=2, views_agree=False))
    assert split.actions == [] and gate(split.status, "GossipConverged")["state"] == "Pending"


def test_a_batch_pod_crash_looping_rolls_back() -> None:
    the_pods = pods({2, 3, 4}, p2={"ready": False, "crash_looping": True, "restarts": 2})
    decision = plan(ME, spec(), status("Rolling", step="Wait", batch=["demo-2", "demo-3"]),
                    world(the_pods, partition=2))
    assert decision.status["phase"] == "RollingBack"
    assert decision.status["failedGates"][0]["name"] == "NoCrashes"


def test_last_batch_then_success_sets_the_cluster_version_and_lets_go() -> None:
    all_new = pods({0, 1, 2, 3, 4})
    decision = plan(ME, spec(), status("Rolling", batch=[]), world(all_new, partition=0))
    assert decision.status["phase"] == "Succeeded"
    assert decision.actions == [SetClusterVersion("1.3.0"), Release()]
    assert decision.status["progress"] == "5/5" and reasons(decision) == ["UpgradeSucceeded"]


# -- restarts of the operator: resume from status -----------------------------------------------------------------

def test_resumed_after_success_was_written_but_not_acted_on() -> None:
    done = {"phase": "Succeeded", "toVersion": "1.3.0", "fromVersion": "1.2.0"}
    again = plan(ME, spec(), done, world(pods({0, 1, 2, 3, 4}), partition=0, holder="up"))
    assert again.actions == [SetClusterVersion("1.3.0"), Release()] and again.events == []
    settled = plan(ME, spec(), done, world(pods({0, 1, 2, 3, 4}), partition=0, holder="", cluster_version="1.3.0"))
    assert settled.actions == []


def test_resumed_mid_batch_neither_repeats_nor_skips() -> None:
    # Killed after lowering the partition, before the status said so: the step is read off the world.
    decision = plan(ME, spec(), status("Rolling", step="Drain", batch=["demo-2", "demo-3"]),
                    world(pods({3, 4}), partition=2))
    assert Drain(("demo-2", "demo-3")) in decision.actions, "demo-2 has not restarted yet: it is drained first"
    drained = pods({3, 4}, p2={"agents": 0})
    decision = plan(ME, spec(), decision.status, world(drained, partition=2))
    assert decision.status["step"] == "Restart" and decision.actions == []


def test_resumed_monitoring_without_a_baseline_starts_one_and_still_judges() -> None:
    the_world = world(pods({4}), partition=4, metrics={"demo-4": sample(5)})
    decision = plan(ME, spec(), status("Monitoring", step="Hold", monitoringSince=iso(NOW - 60)), the_world)
    assert decision.actions == [SaveBaseline({"demo-4": sample(5)})]
    assert decision.status["phase"] == "Monitoring", "an Inconclusive gate is not skipped by a restart"


def test_lost_hold_on_the_cluster_is_taken_again() -> None:
    decision = plan(ME, spec(), status("Rolling", batch=[]), world(pods({4}), partition=4, holder=""))
    assert decision.actions[0] == Acquire()


@pytest.mark.parametrize(("case", "partition", "update", "pods_revision", "starts"), [
    ("settled", 0, "old", "old", True),
    # A spec change applied with the partition at the top waits for the roller: start it.
    ("new template held back", 5, "new", "old", True),
    ("controller free to roll the new template", 0, "new", "old", False),
    ("partly rolled", 3, "new", "mixed", False),
])
def test_an_upgrade_starts_from_a_template_held_back_but_not_from_a_rollout_in_progress(
        case: str, partition: int, update: str, pods_revision: str, starts: bool) -> None:
    the_pods = pods() if pods_revision == "old" else pods({3, 4}, new_version="1.2.0", token="x")
    sts = StatefulSetView(5, "1.2.0", "", partition, rev("1.2.0", "x") if update == "new" else rev("1.2.0"),
                          rev("1.2.0"))
    the_world = world(the_pods, version="1.2.0", holder="up", sts=sts)
    decision = plan(ME, spec(version="1.2.0", restart=True), {}, the_world)
    assert (decision.status["phase"] == "Canary") is starts, (case, decision.status.get("message"))


# -- pause --------------------------------------------------------------------------------------------------------

def test_pause_during_rolling_protects_pods_not_yet_restarted_and_resume_continues() -> None:
    the_pods = pods({3, 4})
    rolling = status("Rolling", step="Restart", batch=["demo-2", "demo-3"])
    paused = plan(ME, spec(paused=True), rolling, world(the_pods, partition=2))
    assert paused.status["phase"] == "Paused" and paused.status["pausedFrom"] == "Rolling"
    assert paused.actions == [SetPartition(3)] and reasons(paused) == ["UpgradePaused"]
    still = plan(ME, spec(paused=True), paused.status, world(the_pods, partition=3))
    assert still.actions == [] and still.events == []
    resumed = plan(ME, spec(), still.status, world(the_pods, partition=3))
    assert resumed.status["phase"] == "Rolling" and reasons(resumed) == ["UpgradeResumed"]
    assert resumed.actions == [SetPartition(2)]


@pytest.mark.parametrize(("case", "the_pods", "partition", "settled", "expected"), [
    # The controller has not yet seen the lowered partition: raise it back before it acts.
    ("partition lowered, controller not there yet", pods({3, 4}), 2, False, [SetPartition(3)]),
    ("partition lowered, controller saw it", pods({3, 4}), 2, True, [SetPartition(3)]),
    # The controller already took demo-2 down: it comes back on the new revision, once.
    ("pod already terminating", pods({3, 4}, p2={"terminating": True}), 2, True, []),
    ("pod already gone", tuple(p for p in pods({3, 4}) if p.ordinal != 2), 2, True, []),
    ("pod already back on the new revision", pods({2, 3, 4}), 2, True, []),
    # Raised before the controller acted, but it had already deleted demo-2: recreated on the old
    # revision below the partition, it is left alone (resume restarts it).
    ("pod recreated on the old revision", pods({3, 4}), 3, True, []),
])
def test_pause_leaves_in_flight_pods_alone_and_protects_the_rest(
        case: str, the_pods: tuple[PodView, ...], partition: int, settled: bool, expected: list[Any]) -> None:
    the_world = world(the_pods, partition=partition)
    assert the_world.sts is not None
    the_world = dataclasses.replace(the_world, sts=dataclasses.replace(the_world.sts, settled=settled))
    paused = plan(ME, spec(paused=True), status("Rolling", step="Restart", batch=["demo-2"]), the_world)
    assert paused.status["phase"] == "Paused", case
    assert paused.actions == expected, case


def test_pause_in_the_canary_phase_waits_for_the_controller_before_touching_the_partition() -> None:
    # Before the canary is through the template may just have changed: the update revision in the
    # status may be stale, so nothing is decided from it.
    the_world = world(pods(), partition=4)
    assert the_world.sts is not None
    the_world = dataclasses.replace(the_world, sts=dataclasses.replace(the_world.sts, settled=False))
    paused = plan(ME, spec(paused=True), status("Canary", step="Restart"), the_world)
    assert paused.status["phase"] == "Paused" and paused.actions == []


def test_pause_while_pending_waits_and_resumes_to_pending() -> None:
    paused = plan(ME, spec(paused=True), {}, world(version="1.2.0", holder="", partition=0))
    assert paused.status["phase"] == "Paused" and paused.actions == []
    resumed = plan(ME, spec(), paused.status, world(version="1.2.0", holder="", partition=0))
    assert resumed.status["phase"] == "Pending" and resumed.actions == [Acquire()]


# -- rolling restart --------------------------------------------------------------------------------------------------

def test_a_rolling_restart_changes_the_template_token_not_the_version() -> None:
    restart = spec(version="1.2.0", restart=True, reason="new kernel")
    start = plan(ME, restart, {}, world(version="1.2.0", holder="up", partition=0))
    assert start.actions == [SetTemplate("1.2.0", "up", 5)]
    assert "rolling restart" in start.events[0].message and "new kernel" in start.events[0].message
    done = plan(ME, restart, status("Rolling", fromVersion="1.2.0", toVersion="1.2.0", batch=[]),
                world(pods({0, 1, 2, 3, 4}, new_version="1.2.0", token="up"), version="1.2.0", token="up",
                      partition=0, cluster_version="1.2.0"))
    assert done.status["phase"] == "Succeeded" and done.actions == [Release()]


def test_progress_and_eta_follow_the_pods() -> None:
    decision = plan(ME, spec(), status("Rolling", batch=[]), world(pods({3, 4}), partition=3))
    assert decision.status["progress"] == "2/5"
    assert decision.status["eta"] > iso(NOW)


def test_a_rollback_asked_for_while_paused_starts_when_resumed() -> None:
    paused = plan(ME, spec(paused=True), status("Rolling", batch=[]), world(pods({4}), partition=4))
    asked = world(pods({4}), partition=4, requests=frozenset({"rollback"}))
    still = plan(ME, spec(paused=True), paused.status, asked)
    assert still.status["phase"] == "Paused" and still.actions == []
    resumed = plan(ME, spec(), still.status, asked)
    assert resumed.status["phase"] == "Rolling"
    rolled = plan(ME, spec(), resumed.status, asked)
    assert rolled.status["phase"] == "RollingBack" and rolled.actions == [SetTemplate("1.2.0", "", 5)]


def test_a_rollback_asked_for_before_the_start_changes_nothing() -> None:
    decision = plan(ME, spec(), {}, world(version="1.2.0", holder="", partition=0,
                                          requests=frozenset({"rollback"})))
    assert decision.status["phase"] == "RolledBack" and decision.actions == []


@pytest.mark.parametrize(("phase", "extra", "the_pods", "partition", "gate_name"), [
    pytest.param("Canary", {"step": "Wait"}, pods({4}, p4={"ready": False}), 4, "CanaryPodReady",
                 id="canary-never-ready"),
    pytest.param("Rolling", {"step": "Wait", "batch": ["demo-2", "demo-3"]}, pods({2, 3, 4}, p2={"ready": False}),
                 2, "MembersAlive", id="batch-never-ready"),
])
def test_past_the_progress_deadline_a_waiting_step_fails(phase: str, extra: dict[str, Any],
                                                          the_pods: tuple[PodView, ...], partition: int,
                                                          gate_name: str) -> None:
    late = status(phase, **extra, stepSince=iso(NOW - 301))
    decision = plan(ME, spec(), late, world(the_pods, partition=partition))
    assert decision.status["phase"] == "RollingBack"
    assert decision.status["failedGates"][0]["name"] == gate_name
    assert "after 301s" in decision.status["failedGates"][0]["message"]
