"""Session-wide fixtures: one Kubernetes cluster for every test that needs one.

Also two rules for the whole run: a skip that tests/skips.py does not allow fails
the test, and SIGTERM (a CI timeout) or SIGINT becomes a normal interruption, so
every fixture's teardown runs and nothing the run started is left behind.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from tests import skips
from tests.support.cluster import ClusterUnderTest, start_cluster, stop_cluster, temporary_namespace
from tests.support.netfault import NetworkPartition, iptables_available
from tests.support.waiting import wait_for

CRD_DIR = Path(__file__).resolve().parents[1] / "crds"


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    # Further signals must not cut the teardown short (it stops what the run started).
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt(f"interrupted by signal {signum}: tearing down")


def pytest_configure(config: pytest.Config) -> None:
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, _interrupt)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    longrepr = report.longrepr
    reason = str(longrepr[2] if isinstance(longrepr, tuple) else longrepr).removeprefix("Skipped: ")
    problem = skips.refusal(reason, os.environ)
    if problem:
        report.outcome = "failed"
        report.longrepr = problem


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterUnderTest]:
    started = start_cluster(Path(tmp_path_factory.mktemp("cluster")))
    try:
        yield started
    finally:
        stop_cluster(started)


@pytest.fixture
def process_cluster(cluster: ClusterUnderTest) -> ClusterUnderTest:
    """The cluster, when its pods are run by our process kubelet (skips otherwise)."""
    if not cluster.has_process_kubelet:
        pytest.skip("needs the process kubelet of the local control plane (KUBECONFIG points elsewhere)")
    return cluster


@pytest.fixture
def namespace(cluster: ClusterUnderTest) -> Iterator[str]:
    yield from temporary_namespace(cluster)


@pytest.fixture(scope="session")
def crds(cluster: ClusterUnderTest) -> ClusterUnderTest:
    """The cluster with the CRDs applied (once per session)."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_DIR))
    for name in ("caxtonclusters", "caxtonupgrades", "caxtonagents"):
        wait_for(lambda name=name: cluster.kubectl(  # type: ignore[misc]
            "get", "crd", f"{name}.caxton.dev", "-o", "jsonpath={.status.conditions[?(@.type=='Established')].status}",
        ).stdout == "True", timeout=30, what=f"CRD {name} established")
    return cluster


@pytest.fixture
def partition() -> Iterator[NetworkPartition]:
    """iptables rules that cut links between loopback addresses; always removed afterwards."""
    problem = iptables_available()
    if problem:
        pytest.skip(problem)
    net = NetworkPartition()
    try:
        yield net
    finally:
        net.remove()
