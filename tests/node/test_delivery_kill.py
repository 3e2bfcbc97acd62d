"""Delivery guarantees across kill -9, in both modes (docs/delivery.md).

The C `ledger` agent logs "start N" before and "handled N" after each message;
the node writes its log line by line, so the log survives SIGKILL and is the
record of what the agent was handed. A backlog is committed first (the agent is
suspended while it fills), then the agent works through it and the node is
killed part-way; after a restart on the same data directory the log is
counted: at-most-once must show no message started twice (some loss allowed,
and reported); at-least-once must show every acknowledged message handled,
including the one the agent was in the middle of when the node was killed.
"""

from __future__ import annotations

import re
import signal
from collections import Counter

from tests.support.agents import agent, deploy, send
from tests.support.nodes import NodeFactory, NodeProcess
from tests.support.waiting import wait_for

LEDGER_CONFIG = {"log_lines_per_message": 16, "log_lines_per_second": 1_000_000, "queue_capacity": 10_000}
BATCH = 64  # the router's claim batch: what at-most-once may lose per agent in a crash


def _ledger(node: NodeProcess) -> tuple[Counter[int], Counter[int]]:
    """How often each seq was started and handled, over every run of the node."""
    text = node.log_file.read_text(errors="replace")
    started = Counter(int(n) for n in re.findall(r"\[agent ledger\] start (\d+)", text))
    handled = Counter(int(n) for n in re.findall(r"\[agent ledger\] handled (\d+)", text))
    return started, handled


def _restored(node: NodeProcess) -> int:
    """How many undelivered messages the last start restored from the data directory."""
    found = re.findall(r"restored \d+ agent\(s\) and (\d+) undelivered message", node.log_file.read_text())
    return int(found[-1]) if found else 0


def test_at_most_once_never_delivers_twice_across_kill_9(
    node_factory: NodeFactory, agents: dict[str, bytes]
) -> None:
    node = node_factory(agents={"delivery": "at-most-once", **LEDGER_CONFIG})
    total = 5000
    with node.client() as client:
        assert deploy(client, "ledger", agents["ledger"], deadline="10s").status_code == 201
        assert client.post("/v1/agents/ledger/suspend").status_code == 200
        for seq in range(total):
            send(client, "ledger", {"seq": seq})
        client.get("/v1/dead-letters")  # reading the journal commits it: the whole backlog is on disk
        assert client.post("/v1/agents/ledger/resume").status_code == 200
        # Killed while the agent races through the backlog, as fast as it can.
        wait_for(lambda: sum(_ledger(node)[1].values()) >= 300, timeout=60, what="300 messages handled",
                 interval=0.01)
    node.stop(signal.SIGKILL)
    before_kill = _ledger(node)[0]
    assert len(before_kill) < total, "the agent finished before the kill: nothing was tested"
    node.start()
    restored = _restored(node)
    with node.client() as client:
        wait_for(lambda: agent(client, "ledger")["handled"] == restored, timeout=120,
                 what=f"the {restored} restored messages to be handled")
    started, handled = _ledger(node)
    duplicates = {seq: n for seq, n in started.items() if n > 1}
    lost = sorted(set(range(total)) - set(handled))
    print(f"at-most-once across kill -9: {total} sent, {len(before_kill)} started before the kill, "
          f"{len(duplicates)} started twice, {len(lost)} lost: {lost[:10]}")
    assert duplicates == {}
    assert len(lost) <= BATCH
    assert set(started) <= set(range(total))


def test_at_least_once_loses_nothing_across_kill_9_not_even_the_message_in_flight(
    node_factory: NodeFactory, agents: dict[str, bytes]
) -> None:
    node = node_factory(agents={"delivery": "at-least-once", **LEDGER_CONFIG})
    quick_before, quick_after = 300, 300
    in_flight = quick_before
    total = quick_before + 1 + quick_after
    with node.client() as client:
        assert deploy(client, "ledger", agents["ledger"], deadline="10s").status_code == 201
        assert client.post("/v1/agents/ledger/suspend").status_code == 200
        for seq in range(total):
            # 202 means committed in this mode: nothing below may be lost.
            send(client, "ledger", {"seq": seq, "sleep_ms": 5000 if seq == in_flight else 0})
        assert client.post("/v1/agents/ledger/resume").status_code == 200
        wait_for(lambda: _ledger(node)[0][in_flight] == 1, timeout=60, what=f"the agent to start message {in_flight}",
                 interval=0.01)
    node.stop(signal.SIGKILL)  # the agent is inside its 5 s sleep on message `in_flight`
    assert _ledger(node)[1][in_flight] == 0
    node.start()
    with node.client() as client:
        wait_for(lambda: set(_ledger(node)[1]) >= set(range(total)), timeout=120,
                 what="every acknowledged message to be handled")
        assert agent(client, "ledger")["failures"] == 0
    started, handled = _ledger(node)
    duplicates = {seq: n for seq, n in handled.items() if n > 1}
    print(f"at-least-once across kill -9: {total} sent, 0 lost, {len(duplicates)} handled twice")
    assert set(handled) == set(range(total))
    assert started[in_flight] == 2 and handled[in_flight] == 1  # redelivered after the kill
