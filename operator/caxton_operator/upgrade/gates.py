"""The named health gates of an upgrade, each judged from observations alone.

Like ECK's upgrade predicates, every gate reports its name, what was observed, the
threshold and a message, so a stalled or failed upgrade explains itself. The metric
gates read deltas of the canary's own counters since the hold began (the same
/metrics Prometheus scrapes), with the old-version nodes' figures beside them. A gate
with too little data is Inconclusive, never Passing: the canary must have handled
`minMessages` messages before its error rate or latency mean anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from caxton_operator.upgrade.world import MemberView, MetricSample, PodView, World

PASSING, FAILING, INCONCLUSIVE, PENDING = "Passing", "Failing", "Inconclusive", "Pending"
ORDER = ("CanaryPodReady", "MembersAlive", "ErrorRate", "P99Latency", "NoCrashes", "GossipConverged")


@dataclass(frozen=True)
class GateResult:
    name: str
    state: str
    observed: str
    threshold: str
    message: str
    old_nodes: str = ""

    @property
    def passing(self) -> bool:
        return self.state == PASSING

    @property
    def failing(self) -> bool:
        return self.state == FAILING


@dataclass(frozen=True)
class Delta:
    handled: float
    errors: float
    crashes: float
    buckets: tuple[tuple[float, float], ...]
    reset: bool  # a counter went down: the process restarted inside the window


def delta(now: MetricSample, before: MetricSample | None) -> Delta:
    before = before or MetricSample()
    reset = now.handled < before.handled or now.crashes < before.crashes or now.dead_letters < before.dead_letters
    if reset:  # counters restarted from zero: everything since the restart is the window
        before = MetricSample()
    old = dict(before.buckets)
    return Delta(handled=now.handled - before.handled,
                 errors=(now.crashes - before.crashes) + (now.dead_letters - before.dead_letters),
                 crashes=now.crashes - before.crashes,
                 buckets=tuple((le, n - old.get(le, 0.0)) for le, n in now.buckets), reset=reset)


def _sum(deltas: Iterable[Delta]) -> Delta | None:
    deltas = list(deltas)
    if not deltas:
        return None
    buckets: dict[float, float] = {}
    for d in deltas:
        for le, n in d.buckets:
            buckets[le] = buckets.get(le, 0.0) + n
    return Delta(sum(d.handled for d in deltas), sum(d.errors for d in deltas), sum(d.crashes for d in deltas),
                 tuple(sorted(buckets.items())), any(d.reset for d in deltas))


def p99_seconds(d: Delta) -> float | None:
    """The upper bound of the histogram bucket holding the 99th percentile (what
    histogram_quantile would interpolate towards); None without observations."""
    if d.handled <= 0:
        return None
    wanted = 0.99 * d.handled
    for le, count in d.buckets:
        if count >= wanted:
            return le
    return float("inf")


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return "+Inf" if seconds == float("inf") else f"{seconds * 1000:g}ms"


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.2f}%"


# -- the gates --------------------------------------------------------------------------------------------

def canary_pod_ready(pod: PodView | None, update_revision: str, target: str, *, waited: float,
                     deadline: float, max_restarts: int) -> GateResult:
    threshold = f"Ready on {target} within {deadline:g}s"
    if pod is None:
        return GateResult("CanaryPodReady", PENDING, "no pod", threshold, "the canary pod does not exist yet")
    observed = f"{'Ready' if pod.ready else 'NotReady'}, {pod.version}, {pod.restarts} restart(s)"
    new = pod.revision == update_revision and pod.version == target
    if new and (pod.crash_looping or pod.restarts > max_restarts):
        return GateResult("CanaryPodReady", FAILING, observed, threshold,
                          f"{pod.name} is crash-looping on {target} ({pod.restarts} restarts)")
    if new and pod.ready:
        return GateResult("CanaryPodReady", PASSING, observed, threshold, f"{pod.name} runs {target} and is Ready")
    if waited > deadline:
        return GateResult("CanaryPodReady", FAILING, observed, threshold,
                          f"{pod.name} is not Ready on {target} after {waited:.0f}s")
    return GateResult("CanaryPodReady", PENDING, observed, threshold, f"waiting for {pod.name} to run {target}")


def members_alive(world: World, replicas: int, *, upgraded: dict[str, str]) -> GateResult:
    """Every member alive, and the pods already moved (`upgraded`: pod -> version) reporting
    the version they were moved to."""
    threshold = f"{replicas}/{replicas} alive" + (", upgraded members at the new version" if upgraded else "")
    if world.members is None:
        return GateResult("MembersAlive", PENDING, "no node answered", threshold, "no node answered")
    members: dict[str, MemberView] = {m.name: m for m in world.members if m.state != "left"}
    alive = sorted(n for n, m in members.items() if m.state == "alive")
    wrong = sorted(f"{pod} reports {members[pod].version or '?'}" for pod, version in upgraded.items()
                   if pod in members and members[pod].version != version)
    observed = f"{len(alive)}/{replicas} alive"
    if upgraded:
        observed += "; " + ", ".join(f"{p} at {members[p].version if p in members else '?'}" for p in sorted(upgraded))
    if len(alive) >= replicas and not wrong:
        return GateResult("MembersAlive", PASSING, observed, threshold, "every member is alive")
    missing = sorted(set(members) - set(alive))
    why = "; ".join(x for x in (f"not alive: {', '.join(missing)}" if missing else "",
                                f"{len(alive)} of {replicas} members known" if len(members) < replicas else "",
                                "; ".join(wrong)) if x)
    return GateResult("MembersAlive", PENDING, observed, threshold, why or "waiting for members")


def gossip_converged(world: World, replicas: int) -> GateResult:
    threshold = "every node sees the same members alive"
    if world.views_agree is None or world.members is None:
        return GateResult("GossipConverged", PENDING, "unknown", threshold, "no node answered")
    alive = sum(1 for m in world.members if m.state == "alive")
    if world.views_agree and alive >= replicas:
        return GateResult("GossipConverged", PASSING, f"{alive} members, views agree", threshold,
                          "gossip has converged")
    views = "agree" if world.views_agree else "differ"
    return GateResult("GossipConverged", PENDING, f"{alive} members, views {views}", threshold,
                      "waiting for gossip to converge")


def _old_deltas(world: World, canary: str) -> Delta | None:
    return _sum(delta(sample, world.baseline.get(pod)) for pod, sample in world.metrics.items()
                if pod != canary and pod in world.baseline)


def error_rate(world: World, canary: str, *, max_rate: float, min_messages: int) -> GateResult:
    threshold = f"<= {_pct(max_rate)} over >= {min_messages} messages"
    sample = world.metrics.get(canary)
    old = _old_deltas(world, canary)
    old_text = _pct(old.errors / old.handled) if old and old.handled else "-"
    if sample is None:
        return GateResult("ErrorRate", PENDING, "no metrics", threshold, f"{canary}'s /metrics did not answer",
                          old_text)
    d = delta(sample, world.baseline.get(canary))
    if d.handled < min_messages:
        return GateResult("ErrorRate", INCONCLUSIVE, f"{d.errors:g} errors / {d.handled:g} messages", threshold,
                          f"too little data: {d.handled:g} of {min_messages} messages handled on {canary}", old_text)
    rate = d.errors / d.handled
    observed = f"{_pct(rate)} ({d.errors:g}/{d.handled:g})"
    state = PASSING if rate <= max_rate else FAILING
    return GateResult("ErrorRate", state, observed, threshold,
                      f"agent failures + dead letters / messages handled on {canary}", old_text)


def p99_latency(world: World, canary: str, *, max_seconds: float, min_messages: int) -> GateResult:
    threshold = f"<= {_ms(max_seconds)}"
    sample = world.metrics.get(canary)
    old = _old_deltas(world, canary)
    old_text = _ms(p99_seconds(old)) if old else "-"
    if sample is None:
        return GateResult("P99Latency", PENDING, "no metrics", threshold, f"{canary}'s /metrics did not answer",
                          old_text)
    d = delta(sample, world.baseline.get(canary))
    p99 = p99_seconds(d)
    if d.handled < min_messages:
        return GateResult("P99Latency", INCONCLUSIVE, f"{_ms(p99)} over {d.handled:g} messages", threshold,
                          f"too little data: {d.handled:g} of {min_messages} messages handled on {canary}", old_text)
    assert p99 is not None
    state = PASSING if p99 <= max_seconds else FAILING
    return GateResult("P99Latency", state, f"<= {_ms(p99)} over {d.handled:g} messages", threshold,
                      f"from {canary}'s caxton_agent_message_latency_seconds histogram", old_text)


def no_crashes(world: World, pods: list[PodView], canary: str | None, *, min_messages: int) -> GateResult:
    """Pods on the new revision have not restarted (they start at 0), and the canary's agent
    crash counter has not moved since the hold began."""
    threshold = "0 pod restarts, 0 agent crashes"
    restarted = [f"{p.name} ({p.restarts})" for p in pods if p.restarts > 0 or p.crash_looping]
    if canary is None:
        if restarted:
            return GateResult("NoCrashes", FAILING, f"restarts: {', '.join(restarted)}", threshold,
                              f"pods on the new version restarted: {', '.join(restarted)}")
        return GateResult("NoCrashes", PASSING, "0 restarts", threshold, "no upgraded pod restarted")
    sample = world.metrics.get(canary)
    d = delta(sample, world.baseline.get(canary)) if sample is not None else None
    crashes = d.crashes if d else 0.0
    observed = f"{crashes:g} agent crash(es); pod restarts: {', '.join(restarted) or '0'}"
    failing = GateResult("NoCrashes", FAILING, observed, threshold,
                         f"{canary}: {crashes:g} agent crashes, restarts {', '.join(restarted) or 'none'}"
                         + (" (its counters restarted)" if d is not None and d.reset else ""))
    if restarted or (d is not None and d.reset):  # the node itself went down: decisive at once
        return failing
    if d is None or d.handled < min_messages:
        # Agent crashes are judged, like the error rate, over enough messages.
        handled = d.handled if d else 0
        return GateResult("NoCrashes", INCONCLUSIVE, observed, threshold,
                          f"too little data: {handled:g} of {min_messages} messages handled on {canary}")
    if crashes > 0:
        return failing
    return GateResult("NoCrashes", PASSING, observed, threshold, "no crash since the canary started")
