"""The load a node reports (caxton_node.load): rates over a window of looks, with a fake clock."""

from __future__ import annotations

from caxton_node.load import WINDOW, LoadMeter


def test_rates_come_from_looks_inside_the_window() -> None:
    clock = {"now": 0.0, "cpu": 0.0}
    handled = {"a": 0, "b": 0}
    meter = LoadMeter(lambda: dict(handled), clock=lambda: clock["now"], cpu=lambda: clock["cpu"])
    first = meter.measure()
    assert first["agents"] == 2 and first["messageRate"] is None and first["agentRates"] == {"a": None, "b": None}
    clock.update(now=10.0, cpu=2.5)
    handled.update(a=100, b=20)
    load = meter.measure()
    assert load["agentRates"] == {"a": 10.0, "b": 2.0} and load["messageRate"] == 12.0
    assert load["cpuPercent"] == 25.0 and load["windowSeconds"] == 10.0
    assert load["memoryBytes"] > 0 and load["memoryLimitBytes"] >= load["memoryBytes"]
    # Long after: the oldest looks fall out, one from before the window stays as the baseline.
    handled.update(c=5)  # an agent that arrived since: measured from its arrival
    clock.update(now=10.0 + WINDOW + 20.0)
    load = meter.measure()
    assert load["agentRates"]["a"] == 0.0 and load["agentRates"]["c"] == round(5 / (WINDOW + 20.0), 2)
    assert load["windowSeconds"] == WINDOW + 20.0
