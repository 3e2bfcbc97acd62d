"""The least-loaded rebalance planner and its gates: pure, so each case is a row."""

from __future__ import annotations

import pytest
from caxton_operator.balance import (
    AgentLoad,
    NodeLoad,
    World,
    gates,
    imbalance,
    parse_threshold,
    pending,
    plan,
    weights,
)


def nodes(*counts: int, rates: dict[str, float] | None = None, memory: dict[str, float] | None = None,
          moving: set[str] = frozenset()) -> list[NodeLoad]:  # type: ignore[assignment]
    """c-0 .. c-N with the given agent counts; agents are named <node>-a<i>."""
    rates, memory = rates or {}, memory or {}
    return [NodeLoad(f"c-{n}", tuple(AgentLoad(f"c-{n}-a{i}", rates.get(f"c-{n}-a{i}", 0.0),
                                               f"c-{n}-a{i}" not in moving) for i in range(count)),
                     memory.get(f"c-{n}")) for n, count in enumerate(counts)]


def counts_after(start: list[NodeLoad], result_moves: list[tuple[str, str]]) -> list[int]:
    count = {n.node: len(n.agents) for n in start}
    for source, target in result_moves:
        count[source] -= 1
        count[target] += 1
    return [count[n.node] for n in start]


@pytest.mark.parametrize(("counts", "threshold", "after", "moves"), [
    ((20, 20, 20), 0.2, (20, 20, 20), 0),  # even: nothing to do
    ((50, 5, 5), 0.2, (24, 18, 18), 26),  # the acceptance case: the heavy node sheds until inside 20%
    ((50, 5, 5), 0.0, (20, 20, 20), 30),  # a 0% threshold evens it out completely
    ((30, 30, 0, 0, 0), 0.2, (14, 14, 11, 11, 10), 32),  # scale 2 -> 5: the new nodes get their share
    ((30, 30, 0, 0, 0), 0.0, (12, 12, 12, 12, 12), 36),
    ((2, 1, 1), 0.2, (2, 1, 1), 0),  # above the threshold (50%), but no single move helps
    ((0, 0, 0), 0.2, (0, 0, 0), 0),  # no agents, no imbalance
    ((7,), 0.2, (7,), 0),  # one node
])
def test_least_loaded_plans(counts: tuple[int, ...], threshold: float, after: tuple[int, ...], moves: int) -> None:
    start = nodes(*counts)
    result = plan(start, threshold, max_moves=100)
    assert len(result.moves) == moves
    assert tuple(counts_after(start, [(m.source, m.target) for m in result.moves])) == after
    assert result.after <= max(threshold, result.before)
    assert all(m.agent.startswith(m.source) for m in result.moves)  # each agent leaves the node it was on


def test_the_imbalance_measure() -> None:
    assert imbalance({"a": 20, "b": 20, "c": 20}) == 0
    assert imbalance({"a": 30, "b": 30, "c": 0}) == 1.0  # an empty node: 100%
    assert imbalance({"a": 24, "b": 18, "c": 18}) == pytest.approx(0.2)
    assert imbalance({}) == 0 and imbalance({"a": 0}) == 0
    assert parse_threshold("20%") == 0.2 and parse_threshold("12.5%") == 0.125


def test_busy_agents_weigh_more_and_are_moved_by_weight() -> None:
    # c-0 has 2 agents, one of them carrying all the traffic; c-1 has 3 idle ones.
    start = nodes(2, 3, 1, rates={"c-0-a0": 100.0})
    w = weights(start)
    assert w["c-0-a0"] == pytest.approx(0.5 + 0.5 * 100 / (100 / 6)) and w["c-1-a0"] == 0.5
    result = plan(start, 0.2, max_moves=10)
    assert result.loads["c-0"] > result.loads["c-1"]  # by weight, the two-agent node is the busiest
    assert result.after < result.before


def test_limits_moving_agents_and_full_nodes() -> None:
    assert len(plan(nodes(50, 5, 5), 0.2, max_moves=10).moves) == 10  # rate-limited per round
    result = plan(nodes(50, 5, 5, memory={"c-1": 0.9}), 0.0, max_moves=100)
    assert {m.target for m in result.moves} == {"c-2"}  # c-1 is above its memory ceiling
    frozen = {f"c-0-a{i}" for i in range(49)}
    result = plan(nodes(50, 5, 5, moving=frozen), 0.0, max_moves=100)
    assert [m.agent for m in result.moves] == ["c-0-a49"]  # agents already moving stay put
    assert "no single move" in plan(nodes(2, 1, 1), 0.2, max_moves=10).note


WORLD = World(strategy="least-loaded", requested=False, upgrading="", partitioned=False, unanswered=(),
              scaling=False, seconds_since_last_move=None, cooldown=10.0)


@pytest.mark.parametrize(("changes", "blocked"), [
    ({}, []),
    ({"strategy": "none"}, ["strategy_allows_moves"]),
    ({"strategy": "none", "requested": True}, []),  # an explicit request overrides `none`
    ({"upgrading": "CaxtonUpgrade demo-to-1-3"}, ["no_upgrade_in_progress"]),
    ({"upgrading": "x", "requested": True}, ["no_upgrade_in_progress"]),  # never during an upgrade
    ({"partitioned": True, "requested": True}, ["no_partition"]),  # never during a partition
    ({"backing_up": "CaxtonBackup nightly is running", "requested": True}, ["no_backup_in_progress"]),
    ({"unanswered": ("c-2",)}, ["every_node_reports_load"]),
    ({"scaling": True}, ["not_scaling"]),
    ({"seconds_since_last_move": 3.0}, ["cooldown_elapsed"]),
    ({"seconds_since_last_move": 3.0, "requested": True}, []),
    ({"seconds_since_last_move": 30.0}, []),
])
def test_gates(changes: dict[str, object], blocked: list[str]) -> None:
    world = World(**{**WORLD.__dict__, **changes})
    assert [g.split(":", 1)[0] for g in gates(world)] == blocked


DRY = {"id": "r1", "strategy": "least-loaded", "dryRun": True}
REAL = {"id": "r2", "strategy": "least-loaded", "dryRun": False}


@pytest.mark.parametrize(("request_", "previous", "acted_on"), [
    (None, {}, False),
    (DRY, {}, True),  # new
    (DRY, {"requestId": "r1", "phase": "Proposed"}, False),  # answered
    # An automatic run moving after a dry run was answered: the old request must not come back.
    (DRY, {"requestId": "r1", "phase": "Moving", "trigger": "Imbalance"}, False),
    (REAL, {"requestId": "r2", "phase": "Moving", "trigger": "Requested"}, True),  # its run goes on
    (REAL, {"requestId": "r2", "phase": "Done", "trigger": "Requested"}, False),
    (REAL, {"requestId": "r1", "phase": "Done"}, True),  # a newer request
])
def test_which_request_is_pending(request_: dict[str, object] | None, previous: dict[str, object],
                                  acted_on: bool) -> None:
    assert (pending(request_, previous) is not None) == acted_on
