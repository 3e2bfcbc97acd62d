"""The placement plan of a CaxtonAgent: pure logic, so every case is cheap to pin down."""

from __future__ import annotations

from typing import Any

from caxton_operator.placement import Desired, plan

LIMITS = {"memory_bytes": 16 * 2**20, "deadline_seconds": 0.01}
ECHO = Desired("echo", 2, "a" * 64, LIMITS, "normal")
NODES = ["c-0", "c-1", "c-2"]


def agent(agent_id: str, sha: str = "a" * 64, state: str = "running") -> dict[str, Any]:
    return {"id": agent_id, "sha256": sha, "priority": "normal", "state": state, "limits": dict(LIMITS)}


def test_new_replicas_go_to_the_least_loaded_nodes_one_per_node() -> None:
    found = {"c-0": [agent("x"), agent("y")], "c-1": [], "c-2": [agent("z")]}
    result = plan(ECHO, found, NODES, [], now=0, replace_after=30)
    assert result.deploy == [("echo-0", "c-1"), ("echo-1", "c-2")]
    assert result.remove == [] and result.ready == 0


def test_running_replicas_stay_and_duplicates_are_removed() -> None:
    found = {"c-0": [agent("echo-0")], "c-1": [agent("echo-0"), agent("echo-1")], "c-2": []}
    previous = [{"replica": "echo-0", "node": "c-1"}, {"replica": "echo-1", "node": "c-1"}]
    result = plan(ECHO, found, NODES, previous, now=0, replace_after=30)
    assert result.deploy == [] and result.remove == [("echo-0", "c-0")]
    assert [(p["replica"], p["node"]) for p in result.placement] == [("echo-0", "c-1"), ("echo-1", "c-1")]
    assert result.ready == 2


def test_a_silent_node_keeps_its_replica_until_replace_after() -> None:
    previous = [{"replica": "echo-0", "node": "c-2"}, {"replica": "echo-1", "node": "c-0"}]
    found = {"c-0": [agent("echo-1")], "c-1": []}
    waiting = plan(ECHO, found, ["c-0", "c-1"], previous, now=100, replace_after=30)
    assert waiting.deploy == [] and waiting.placement[0]["state"] == "node-unavailable"
    assert waiting.placement[0]["unavailableSince"] == 100
    later = plan(ECHO, found, ["c-0", "c-1"], waiting.placement, now=131, replace_after=30)
    assert later.deploy == [("echo-0", "c-1")]


def test_a_changed_spec_redeploys_in_place_and_extra_replicas_go() -> None:
    found = {"c-0": [agent("echo-0", sha="b" * 64)], "c-1": [agent("echo-1")], "c-2": [agent("echo-2")]}
    result = plan(ECHO, found, NODES, [], now=0, replace_after=30)
    assert result.replace == [("echo-0", "c-0")]
    assert result.remove == [("echo-2", "c-2")]


def test_replicas_on_a_leaving_node_move_before_it_goes() -> None:
    found = {"c-0": [], "c-1": [agent("echo-1")], "c-2": [agent("echo-0")]}
    result = plan(ECHO, found, ["c-0", "c-1"], [{"replica": "echo-0", "node": "c-2"}], now=0, replace_after=30)
    assert result.deploy == [("echo-0", "c-0")] and result.remove == [("echo-0", "c-2")]


def test_other_agents_are_not_ours() -> None:
    assert ECHO.owns("echo-3") and not ECHO.owns("echo-3-0") and not ECHO.owns("echoes-1")
    found = {"c-0": [agent("echo-0"), agent("echo-server-1")], "c-1": [agent("echo-1")]}
    assert plan(ECHO, found, ["c-0", "c-1"], [], now=0, replace_after=30).remove == []


def test_a_node_being_drained_keeps_its_replicas_but_gets_no_new_ones() -> None:
    found = {"c-0": [agent("echo-0")], "c-1": [], "c-2": []}
    result = plan(ECHO, found, NODES, [{"replica": "echo-0", "node": "c-0"}], now=0, replace_after=30,
                  closed={"c-0", "c-1"})
    assert result.remove == [] and result.deploy == [("echo-1", "c-2")]
    # Mid-move the copy is kept where it goes; removing the original is left to the roller.
    found = {"c-0": [agent("echo-0")], "c-1": [], "c-2": [agent("echo-0"), agent("echo-1")]}
    result = plan(ECHO, found, NODES, [{"replica": "echo-0", "node": "c-0"}], now=0, replace_after=30,
                  closed={"c-0"})
    assert result.remove == [] and result.placement[0]["node"] == "c-2"


def test_a_replica_frozen_by_a_move_is_left_to_the_mover() -> None:
    moving = dict(agent("echo-0"), moving=True)
    # Before the copy exists: the frozen original stays placed, nothing is deployed or removed.
    found = {"c-0": [moving, agent("echo-1")], "c-1": [], "c-2": []}
    result = plan(ECHO, found, NODES, [{"replica": "echo-0", "node": "c-0"}], now=0, replace_after=30)
    assert result.deploy == [] and result.remove == [] and result.placement[0]["node"] == "c-0"
    # Copy made: it is kept, and the original (which hands its queue over) is not removed by placement.
    found = {"c-0": [moving, agent("echo-1")], "c-1": [agent("echo-0")], "c-2": []}
    result = plan(ECHO, found, NODES, [{"replica": "echo-0", "node": "c-0"}], now=0, replace_after=30)
    assert result.remove == [] and result.placement[0]["node"] == "c-1"
