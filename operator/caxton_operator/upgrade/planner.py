"""The upgrade as a pure state machine: (spec, status, observed world) -> (next status, actions, events).

Phases: Pending -> Canary -> Monitoring -> Rolling -> Succeeded, with RollingBack ->
RolledBack when a gate fails (or Failed, holding, without autoRollback), and Paused
while spec.paused is true. The mechanism is the StatefulSet's partitioned
RollingUpdate: the template moves to the new version with the partition at the top,
the canary (highest ordinal) is drained and let through, held while the gates judge
it, then the partition walks down in batches, each drained first.

Everything that decides is here; the Kopf handler only gathers the world and carries
out the actions. Each step is level-triggered: it is done when the world shows it
done, not when an action was sent, and every action is idempotent. The handler
writes the status before acting, so an operator killed at any moment resumes from
status and neither repeats a finished step nor skips a gate.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from caxton_node.config import parse_duration

from caxton_operator.conditions import Conditions
from caxton_operator.models import CaxtonUpgradeSpec
from caxton_operator.upgrade import gates
from caxton_operator.upgrade.gates import GateResult
from caxton_operator.upgrade.versions import is_downgrade, normalize
from caxton_operator.upgrade.world import MetricSample, PodView, World

PHASES = ("Pending", "Canary", "Monitoring", "Rolling", "Succeeded", "RollingBack", "RolledBack", "Failed",
          "Paused")
ACTIVE = frozenset({"Canary", "Monitoring", "Rolling", "RollingBack"})
FINISHED = frozenset({"Succeeded", "RolledBack"})
MAX_CANARY_RESTARTS = 1  # a pod on the new version that restarts more than this is crash-looping


# -- actions: what the handler carries out, in order ------------------------------------------------------

@dataclass(frozen=True)
class Acquire:
    """Mark the cluster as held by this upgrade (one upgrade per cluster)."""


@dataclass(frozen=True)
class Release:
    """Clear the mark, if it is still ours."""


@dataclass(frozen=True)
class SetTemplate:
    """Pod template to `version` (and restart token) and the partition, in one update."""

    version: str
    restart_token: str
    partition: int


@dataclass(frozen=True)
class SetPartition:
    partition: int


@dataclass(frozen=True)
class Drain:
    """Stop placing agents on `pods`, move their agents to the other nodes (copy, then remove,
    queued messages with them) and let their backlog empty."""

    pods: tuple[str, ...]


@dataclass(frozen=True)
class Undrain:
    """Let agents be placed on `pods` again and move a fair share onto them."""

    pods: tuple[str, ...]


@dataclass(frozen=True)
class DeletePod:
    """A pod stuck on the wrong revision (crash-looping) that the StatefulSet controller
    will not replace by itself."""

    pod: str


@dataclass(frozen=True)
class SetClusterVersion:
    version: str


@dataclass(frozen=True)
class SaveBaseline:
    """Remember every node's counters: the metric gates judge deltas from here."""

    samples: dict[str, MetricSample]


Action = Acquire | Release | SetTemplate | SetPartition | Drain | Undrain | DeletePod | SetClusterVersion | SaveBaseline


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class Decision:
    status: dict[str, Any]
    actions: list[Action] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


# -- time --------------------------------------------------------------------------------------------------

def iso(when: float) -> str:
    return dt.datetime.fromtimestamp(when, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch(text: str | None, default: float) -> float:
    if not text:
        return default
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()


def human(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


# -- the planner ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Settings:
    name: str  # this CaxtonUpgrade
    implicit: bool = False  # made by the operator for an edit of the cluster's spec.version


class _Plan:
    def __init__(self, settings: Settings, spec: CaxtonUpgradeSpec, status: dict[str, Any], world: World) -> None:
        self.name = settings.name
        self.implicit = settings.implicit
        self.spec = spec
        self.world = world
        self.now = world.now
        self.before = status
        self.s: dict[str, Any] = {k: v for k, v in status.items() if k != "conditions"}
        self.d = Decision(self.s)
        self.target = normalize(spec.version)
        self.gate_results: list[GateResult] = []
        self.hold = parse_duration(spec.canary.duration)
        self.deadline = parse_duration(spec.progress_deadline)

    # -- helpers ------------------------------------------------------------------------------------

    def act(self, *actions: Action) -> None:
        self.d.actions.extend(actions)

    def event(self, kind: str, reason: str, message: str) -> None:
        self.d.events.append(Event(kind, reason, message))

    def wait(self, reason: str, message: str) -> None:
        self.s["reason"], self.s["message"] = reason, message

    def enter(self, phase: str, step: str = "") -> None:
        self.s["phase"], self.s["step"] = phase, step
        self.s["stepSince"] = iso(self.now)

    def set_step(self, step: str) -> None:
        self.s["step"] = step
        self.s["stepSince"] = iso(self.now)

    @property
    def waited(self) -> float:
        return self.now - epoch(self.s.get("stepSince"), self.now)

    @property
    def replicas(self) -> int:
        assert self.world.sts is not None
        return self.world.sts.replicas

    @property
    def token(self) -> str:
        """The restart token the new template carries: ours for a rolling restart."""
        return self.name if self.spec.restart else str(self.s.get("fromRestartToken", ""))

    @property
    def from_version(self) -> str:
        return str(self.s.get("fromVersion", ""))

    def pod_name(self, ordinal: int) -> str:
        assert self.world.cluster is not None
        return f"{self.world.cluster.name}-{ordinal}"

    def updated(self, pod: PodView) -> bool:
        sts = self.world.sts
        return sts is not None and pod.revision == sts.update_revision and not pod.terminating

    def template_is_target(self) -> bool:
        sts = self.world.sts
        return sts is not None and sts.version == self.target and sts.restart_token == self.token

    @staticmethod
    def drained(pod: PodView | None) -> bool:
        # A node that does not answer holds no work we could move; what is on its volume comes back with it.
        return pod is None or ((pod.agents or 0) == 0 and (pod.backlog or 0) == 0)

    def record_gates(self, results: list[GateResult]) -> None:
        self.gate_results = results
        previous = {g["name"]: g for g in self.before.get("gates") or []}
        self.s["gates"] = [{
            "name": g.name, "state": g.state, "observed": g.observed, "threshold": g.threshold,
            "message": g.message, **({"oldNodes": g.old_nodes} if g.old_nodes else {}),
            "since": previous[g.name]["since"] if previous.get(g.name, {}).get("state") == g.state
            else iso(self.now),
        } for g in sorted(results, key=lambda g: gates.ORDER.index(g.name))]

    def progress(self) -> None:
        sts, world = self.world.sts, self.world
        if sts is None:
            return
        total = sts.replicas
        if self.s.get("phase") == "RollingBack":
            done = sum(1 for p in world.pods if self.updated(p) and p.version == self.from_version)
        elif self.s.get("phase") == "Succeeded":
            done = total
        else:
            done = sum(1 for p in world.pods if self.template_is_target() and self.updated(p)
                       and p.version == self.target) if self.s.get("phase") in ACTIVE | {"Paused"} else 0
        self.s["upgraded"], self.s["total"] = done, total
        self.s["progress"] = f"{done}/{total}"
        started = epoch(self.s.get("startedAt"), 0.0)
        if self.s.get("phase") in ("Canary", "Monitoring", "Rolling") and started:
            hold_left = 0.0
            if self.s["phase"] in ("Canary", "Monitoring"):
                since = epoch(self.s.get("monitoringSince"), self.now)
                hold_left = max(self.hold - (self.now - since), 0.0) if self.s["phase"] == "Monitoring" else self.hold
            per_pod = (self.now - started) / done if done else 60.0
            self.s["eta"] = iso(self.now + hold_left + per_pod * (total - done))
        else:
            self.s.pop("eta", None)

    def conditions(self) -> None:
        conditions = Conditions(self.before.get("conditions"), now=self.now)
        phase = self.s.get("phase", "Pending")
        reason = self.s.get("reason") or phase
        conditions.set("Progressing", phase in ACTIVE, reason, self.s.get("message") or phase)
        if self.gate_results:
            bad = [g for g in self.gate_results if not g.passing]
            conditions.set("Healthy", not bad, bad[0].name + bad[0].state if bad else "AllGatesPassing",
                           "; ".join(f"{g.name} {g.state}: {g.message}" for g in bad) if bad
                           else "every gate passes")
        conditions.set("Complete", phase in FINISHED or phase == "Failed",
                       phase if phase in FINISHED or phase == "Failed" else "InProgress",
                       self.s.get("message") or phase)
        self.s["conditions"] = conditions.as_list()

    # -- entry ------------------------------------------------------------------------------------------

    def run(self) -> Decision:
        phase = self.s.setdefault("phase", "Pending")
        world = self.world
        holds = world.cluster is not None and world.cluster.holder == self.name
        self.s.setdefault("toVersion", self.target)
        if phase in FINISHED or (phase == "Failed" and not holds):
            self.finish_actions()
        elif "rollback" in world.requests and phase in ACTIVE - {"RollingBack"} | {"Failed"} and holds \
                and not self.spec.paused:
            self.start_rollback("RollbackRequested", "rollback requested (caxton.dev/rollback)")
        elif "rollback" in world.requests and phase == "Pending":
            self.enter("RolledBack")
            self.wait("RollbackRequested", "rollback requested before the upgrade started: nothing was changed")
        elif self.spec.paused and phase != "Failed":
            self.paused()
        else:
            if phase == "Paused":
                phase = self.s["phase"] = self.s.pop("pausedFrom", "Pending")
                self.event("Normal", "UpgradeResumed", f"resumed in phase {phase}")
            self.step(phase)
        self.progress()
        self.conditions()
        return self.d

    def step(self, phase: str) -> None:
        world = self.world
        if phase == "Pending":
            self.pending()
            return
        if world.cluster is None or world.sts is None:
            self.wait("ClusterNotFound", f"CaxtonCluster {self.spec.cluster_ref.name} or its StatefulSet is gone")
            return
        if world.cluster.holder != self.name:
            self.act(Acquire())
        if not world.sts.settled:
            self.wait("StatefulSetUpdating", "waiting for the StatefulSet controller to see the new template")
            return
        if phase == "Canary":
            self.canary()
        elif phase == "Monitoring":
            self.monitoring()
        elif phase == "Rolling":
            self.rolling()
        elif phase == "RollingBack":
            self.rolling_back()
        elif phase == "Failed":
            self.wait(self.s.get("reason") or "GateFailed", self.s.get("message") or "failed; holding")

    # -- Pending --------------------------------------------------------------------------------------------

    def pending(self) -> None:
        world, cluster, sts = self.world, self.world.cluster, self.world.sts
        if cluster is None:
            self.wait("ClusterNotFound", f"CaxtonCluster {self.spec.cluster_ref.name} does not exist")
            return
        if sts is None:
            self.wait("ClusterNotProvisioned", f"{cluster.name} has no StatefulSet yet")
            return
        if cluster.holder and cluster.holder != self.name and cluster.holder_active:
            self.wait("WaitingForUpgrade", f"CaxtonUpgrade {cluster.holder} is upgrading {cluster.name}; "
                                           "this one starts when it has finished")
            return
        current = sts.version
        if is_downgrade(current, self.target) and not self.spec.allow_downgrade:
            self.enter("Failed")
            self.wait("DowngradeRefused", f"{current} -> {self.target} is a downgrade; set spec.allowDowngrade: "
                                          "true if the release notes allow it")
            self.event("Warning", "DowngradeRefused", self.s["message"])
            return
        if current == self.target and not self.spec.restart:
            self.enter("Succeeded")
            self.s["finishedAt"] = iso(self.now)
            self.wait("AlreadyAtVersion", f"{cluster.name} already runs {current}")
            return
        unready = sorted(p.name for p in world.pods if not p.ready)
        members = gates.members_alive(world, sts.replicas, upgraded={})
        # A new template held back by the partition (a spec change waiting for the roller) is not a rollout
        # in progress; pods on another revision, or a template the controller is free to roll, are.
        rolling = any(p.revision != sts.current_revision for p in world.pods) or (
            sts.partition < sts.replicas and (sts.partition != 0 or sts.update_revision != sts.current_revision))
        if unready or len(world.pods) < sts.replicas or not members.passing or rolling:
            why = f"pods not Ready: {', '.join(unready)}" if unready else members.message \
                if not members.passing else "a previous rollout has not finished"
            self.wait("ClusterNotHealthy", f"an upgrade starts from a healthy cluster: {why}")
            return
        if cluster.holder != self.name:
            self.act(Acquire())
            self.wait("Starting", f"taking {cluster.name} for this upgrade")
            return
        canary = self.pod_name(sts.replicas - 1)
        self.s.update(fromVersion=current, fromRestartToken=sts.restart_token, toVersion=self.target,
                      startedAt=iso(self.now), canaryPod=canary)
        self.enter("Canary", "Drain")
        self.act(SetTemplate(self.target, self.token, sts.replicas))
        what = "rolling restart" if current == self.target else f"{current} -> {self.target}"
        self.event("Normal", "UpgradeStarted", f"{what}: canary {canary}"
                   + (f" held {self.spec.canary.duration}" if self.hold else " (no canary hold)")
                   + f", then batches of {self.batch_size()}"
                   + (f"; reason: {self.spec.reason}" if self.spec.reason else ""))
        self.wait("DrainingCanary", f"moving {canary}'s agents to its peers")

    def batch_size(self) -> int:
        n = self.replicas
        # Never more down at once than quorum (and the PodDisruptionBudget, minAvailable n/2+1) allows.
        return max(1, min(self.spec.batch_size, n - (n // 2 + 1)))

    # -- Canary -----------------------------------------------------------------------------------------------

    def canary(self) -> None:
        sts = self.world.sts
        assert sts is not None
        if not self.template_is_target():
            self.act(SetTemplate(self.target, self.token, max(sts.partition, sts.replicas)))
            self.wait("UpdatingTemplate", f"setting the pod template to {self.target}")
            return
        canary = str(self.s["canaryPod"])
        ordinal = int(canary.rsplit("-", 1)[1])
        pod = self.world.pod(canary)
        if self.s.get("step", "Drain") == "Drain":
            if pod is not None and self.updated(pod):
                self.set_step("Restart")
            elif self.drained(pod):
                self.set_step("Restart")
                self.event("Normal", "CanaryDrained", f"{canary}: agents moved to its peers, backlog empty")
            else:
                self.act(Drain((canary,)))
                self.wait("DrainingCanary", f"{canary}: {pod.agents if pod else '?'} agent(s), "
                                            f"{pod.backlog if pod else '?'} queued message(s) left")
                return
        if self.s["step"] == "Restart":
            if sts.partition > ordinal:
                self.act(SetPartition(ordinal))
            if pod is not None and self.updated(pod):
                self.set_step("Wait")
            else:
                self.wait("RestartingCanary", f"{canary} restarts on {self.target}")
                return
        ready = gates.canary_pod_ready(pod, sts.update_revision, self.target, waited=self.waited,
                                       deadline=self.deadline, max_restarts=MAX_CANARY_RESTARTS)
        members = gates.members_alive(self.world, sts.replicas, upgraded={canary: self.target})
        self.record_gates([ready, members])
        if ready.failing:
            self.fail([ready])
            return
        if not (ready.passing and members.passing):
            if self.waited > self.deadline:
                self.fail([GateResult("MembersAlive", gates.FAILING, members.observed, members.threshold,
                                      f"{members.message} after {self.waited:.0f}s")])
                return
            self.wait("WaitingForCanary", ready.message if not ready.passing else members.message)
            return
        self.act(Undrain((canary,)))
        if self.hold > 0:
            self.enter("Monitoring", "Hold")
            self.s["monitoringSince"] = iso(self.now)
            self.act(SaveBaseline(dict(self.world.metrics)))
            self.event("Normal", "CanaryUpgraded", f"{canary} runs {self.target}; its agents are back and it is "
                                                   f"judged for {self.spec.canary.duration}")
            self.wait("CanaryHold", f"holding {canary} for {self.spec.canary.duration}")
        else:
            self.enter("Rolling")
            self.s["batch"] = []
            self.event("Normal", "CanaryUpgraded", f"{canary} runs {self.target}; no canary hold")
            self.wait("Rolling", "moving on to the next batch")

    # -- Monitoring --------------------------------------------------------------------------------------------

    def monitoring(self) -> None:
        sts, world = self.world.sts, self.world
        assert sts is not None
        canary = str(self.s["canaryPod"])
        pod = world.pod(canary)
        if not world.baseline:  # a restarted operator found no baseline: the window starts now
            self.act(SaveBaseline(dict(world.metrics)))
        if pod is not None and pod.ready and pod.agents == 0:
            self.act(Undrain((canary,)))
        min_messages = self.spec.canary.min_messages
        results = [
            gates.canary_pod_ready(pod, sts.update_revision, self.target, waited=0.0, deadline=self.deadline,
                                   max_restarts=MAX_CANARY_RESTARTS),
            gates.members_alive(world, sts.replicas, upgraded={canary: self.target}),
            gates.error_rate(world, canary, max_rate=float(self.spec.canary.max_error_rate.rstrip("%")) / 100,
                             min_messages=min_messages),
            gates.p99_latency(world, canary, max_seconds=parse_duration(self.spec.canary.max_p99_latency),
                              min_messages=min_messages),
            gates.no_crashes(world, [pod] if pod else [], canary, min_messages=min_messages),
            gates.gossip_converged(world, sts.replicas),
        ]
        self.record_gates(results)
        failing = [g for g in results if g.failing]
        if failing:
            self.fail(failing)
            return
        healthy = all(g.passing for g in results)
        if healthy:
            self.s.setdefault("healthySince", iso(self.now))
        else:
            self.s.pop("healthySince", None)
        elapsed = self.now - epoch(self.s.get("monitoringSince"), self.now)
        if "promote" in world.requests:
            self.promote(f"{canary} promoted by request after {human(elapsed)}")
            return
        if healthy and elapsed >= self.hold:
            self.promote(f"{canary} passed every gate for {self.spec.canary.duration}")
            return
        waiting = [g for g in results if not g.passing]
        self.wait("CanaryHold", f"holding {canary}: {human(elapsed)} of {self.spec.canary.duration}"
                  + "".join(f"; {g.name} {g.state}: {g.message}" for g in waiting))

    def promote(self, message: str) -> None:
        self.enter("Rolling")
        self.s["batch"] = []
        self.event("Normal", "CanaryPromoted", message)
        self.wait("Rolling", message)

    # -- Rolling --------------------------------------------------------------------------------------------

    def rolling(self) -> None:
        sts, world = self.world.sts, self.world
        assert sts is not None
        if not self.template_is_target():  # only a hand edit gets here; put it back
            self.act(SetTemplate(self.target, self.token, max(sts.partition, self.lowest_updated())))
            return
        batch: list[str] = list(self.s.get("batch") or [])
        updated = [p for p in world.pods if self.updated(p)]
        if not batch:
            alive = gates.members_alive(world, sts.replicas, upgraded={p.name: self.target for p in updated})
            converged = gates.gossip_converged(world, sts.replicas)
            crashes = gates.no_crashes(world, updated, None, min_messages=0)
            self.record_gates([alive, converged, crashes])
            if crashes.failing:
                self.fail([crashes])
                return
            if sts.partition == 0:
                if len(updated) == sts.replicas and all(p.ready for p in updated) and alive.passing:
                    self.succeed()
                else:
                    self.wait("WaitingForPods", alive.message)
                return
            if not (alive.passing and converged.passing):
                self.wait("WaitingForGates", alive.message if not alive.passing else converged.message)
                return
            top = min(sts.partition, self.lowest_updated())
            low = max(0, top - self.batch_size())
            batch = [self.pod_name(i) for i in range(low, top)]
            self.s["batch"] = batch
            self.set_step("Drain")
            self.event("Normal", "BatchStarted", f"draining and upgrading {', '.join(batch)}")
        pods = {name: world.pod(name) for name in batch}
        low = min(int(n.rsplit("-", 1)[1]) for n in batch)
        if self.s.get("step") == "Drain":
            waiting = [n for n, p in pods.items() if not (p is not None and self.updated(p))]
            if all(self.drained(pods[n]) for n in waiting):
                self.set_step("Restart")
            else:
                self.act(Drain(tuple(batch)))
                self.wait("DrainingBatch", "moving the agents of " + ", ".join(
                    f"{n} ({getattr(pods[n], 'agents', '?')})" for n in waiting))
                return
        if self.s.get("step") == "Restart":
            if sts.partition > low:
                self.act(SetPartition(low))
            if all(p is not None and self.updated(p) for p in pods.values()):
                self.set_step("Wait")
            else:
                self.wait("RestartingBatch", f"{', '.join(batch)} restart on {self.target}")
                if not any(p is not None and (p.crash_looping or p.restarts > MAX_CANARY_RESTARTS)
                           and self.updated(p) for p in pods.values()):
                    return
        batch_pods = [p for p in pods.values() if p is not None]
        crashes = gates.no_crashes(world, [p for p in batch_pods if self.updated(p)], None, min_messages=0)
        alive = gates.members_alive(world, sts.replicas, upgraded=dict.fromkeys(batch, self.target))
        self.record_gates([alive, crashes])
        if crashes.failing:
            self.fail([crashes])
            return
        if len(batch_pods) == len(batch) and all(p.ready and self.updated(p) for p in batch_pods) and alive.passing:
            self.act(Undrain(tuple(batch)))
            self.s["batch"] = []
            self.set_step("")
            self.event("Normal", "BatchUpgraded", f"{', '.join(batch)} run {self.target}")
            self.wait("Rolling", f"{', '.join(batch)} upgraded")
            return
        if self.waited > self.deadline:
            self.fail([GateResult("MembersAlive", gates.FAILING, alive.observed, alive.threshold,
                                  f"{alive.message} after {self.waited:.0f}s")])
            return
        self.wait("WaitingForBatch", alive.message)

    def lowest_updated(self) -> int:
        """The lowest ordinal already on the update revision, counting down from the top."""
        sts = self.world.sts
        assert sts is not None
        lowest = sts.replicas
        for ordinal in range(sts.replicas - 1, -1, -1):
            pod = self.world.pod(self.pod_name(ordinal))
            if pod is None or not self.updated(pod):
                break
            lowest = ordinal
        return lowest

    def lowest_in_flight(self) -> int:
        """The lowest ordinal, counting down from the top, that is on the update revision or that the
        controller has already taken down for it (terminating or not yet recreated)."""
        sts = self.world.sts
        assert sts is not None
        lowest = sts.replicas
        for ordinal in range(sts.replicas - 1, -1, -1):
            pod = self.world.pod(self.pod_name(ordinal))
            if ordinal < sts.partition and not (pod is not None and self.updated(pod)):
                break  # below the partition the controller touches nothing
            if pod is not None and not pod.terminating and not self.updated(pod):
                break
            lowest = ordinal
        return lowest

    def succeed(self) -> None:
        started = epoch(self.s.get("startedAt"), self.now)
        self.enter("Succeeded")
        self.s["finishedAt"] = iso(self.now)
        self.s.pop("batch", None)
        what = f"every node runs {self.target}" if self.from_version != self.target else "every node restarted"
        self.wait("Succeeded", f"{what} ({human(self.now - started)})")
        self.event("Normal", "UpgradeSucceeded", self.s["message"])
        self.finish_actions()

    # -- failure and rollback -----------------------------------------------------------------------------------

    def fail(self, failing: list[GateResult]) -> None:
        self.s["failedGates"] = [{"name": g.name, "observed": g.observed, "threshold": g.threshold,
                                  "message": g.message} for g in failing]
        text = "; ".join(f"{g.name} failed: observed {g.observed} (threshold {g.threshold}): {g.message}"
                         for g in failing)
        if self.spec.auto_rollback:
            self.start_rollback("GateFailed", text)
            return
        self.enter("Failed")
        self.wait("GateFailed", f"{text}; holding (autoRollback is false): "
                                "kubectl caxton cluster upgrade rollback puts it back")
        self.event("Warning", "UpgradeFailed", self.s["message"])

    def start_rollback(self, reason: str, message: str) -> None:
        self.s["rollbackReason"] = message
        self.s.pop("batch", None)
        self.s.pop("healthySince", None)
        self.enter("RollingBack", "Revert")
        self.wait(reason, message)
        self.event("Warning", "RollbackStarted", f"back to {self.from_version}: {message}")
        sts = self.world.sts
        if sts is not None:
            self.act(SetTemplate(self.from_version, str(self.s.get("fromRestartToken", "")), sts.replicas))

    def rolling_back(self) -> None:
        sts, world = self.world.sts, self.world
        if sts is None:
            return
        old_token = str(self.s.get("fromRestartToken", ""))
        if sts.version != self.from_version or sts.restart_token != old_token:
            self.act(SetTemplate(self.from_version, old_token, max(sts.partition, self.lowest_updated())))
            return
        if not sts.settled:
            return
        wrong = sorted((p for p in world.pods if not self.updated(p) and not p.terminating),
                       key=lambda p: -p.ordinal)
        if not wrong and len(world.pods) == sts.replicas and not any(p.terminating for p in world.pods):
            alive = gates.members_alive(world, sts.replicas, upgraded={p.name: self.from_version for p in world.pods})
            if all(p.ready for p in world.pods) and alive.passing:
                self.enter("RolledBack")
                self.s["finishedAt"] = iso(self.now)
                self.act(SetPartition(0), Undrain(tuple(p.name for p in world.pods)))
                message = f"every node is back on {self.from_version}: {self.s.get('rollbackReason', '')}"
                self.wait("RolledBack", message)
                self.event("Warning", "RolledBack", message)
                self.finish_actions()
                return
            self.wait("RollingBack", alive.message)
            return
        if not wrong:
            self.wait("RollingBack", "waiting for the pods to come back on the old version")
            return
        serving = [p for p in wrong if p.ready and not self.drained(p)]
        if serving and sts.partition > min(p.ordinal for p in wrong):
            self.act(Drain(tuple(p.name for p in wrong)))
            self.wait("DrainingForRollback", "moving agents off " + ", ".join(p.name for p in serving))
            return
        low = min(p.ordinal for p in wrong)
        if sts.partition > low:
            self.act(SetPartition(low))
        for pod in wrong:
            # The StatefulSet controller waits for a broken pod forever; a crash-looping pod on the
            # new revision is replaced by deleting it.
            if not pod.ready and (pod.crash_looping or pod.restarts > MAX_CANARY_RESTARTS):
                self.act(DeletePod(pod.name))
        self.wait("RollingBack", f"{', '.join(p.name for p in wrong)} go back to {self.from_version}")

    # -- paused and finished ---------------------------------------------------------------------------------------

    def paused(self) -> None:
        phase = self.s["phase"]
        if phase != "Paused":
            self.s["pausedFrom"] = phase
            self.s["phase"] = "Paused"
            self.event("Normal", "UpgradePaused", f"paused in phase {phase}: no pod changes until resumed")
        sts = self.world.sts
        if sts is not None and self.s["pausedFrom"] in ACTIVE:
            # Pods let through but not touched yet stay where they are; a pod the controller has already
            # taken down comes back on the revision it was going to. Raising the partition never restarts
            # a pod, so it is safe even before the controller has seen our last partition change: once the
            # canary is through, the update revision no longer moves (only the partition does).
            from_rollback = self.s["pausedFrom"] == "RollingBack"
            protect = sts.replicas if from_rollback else self.lowest_in_flight()
            template_stable = self.s["pausedFrom"] in ("Monitoring", "Rolling") and self.template_is_target()
            if sts.partition < protect and (sts.settled or template_stable):
                self.act(SetPartition(protect))
        self.wait("Paused", f"paused in phase {self.s['pausedFrom']}: set spec.paused to false "
                            "(kubectl caxton cluster upgrade resume) to continue")

    def finish_actions(self) -> None:
        """What the end of an upgrade must leave behind, idempotent (a killed operator may have
        written the final status without acting on it)."""
        cluster = self.world.cluster
        if cluster is None or cluster.holder != self.name:
            return
        phase = self.s.get("phase")
        if phase == "Succeeded" and cluster.version != self.target:
            self.act(SetClusterVersion(self.target))
        if phase == "RolledBack" and self.implicit and self.from_version and cluster.version != self.from_version:
            self.act(SetClusterVersion(self.from_version))
        self.act(Release())


def plan(settings: Settings, spec: CaxtonUpgradeSpec, status: dict[str, Any], world: World) -> Decision:
    """The next status, the actions to carry out (in order) and the Events to post."""
    return _Plan(settings, spec, status, world).run()
