"""Operator tests: the CRDs installed once per session into the test cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cluster import ClusterUnderTest
from tests.support.waiting import wait_for

CRD_DIR = Path(__file__).resolve().parents[2] / "crds"


@pytest.fixture(scope="session")
def crds(cluster: ClusterUnderTest) -> ClusterUnderTest:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_DIR))
    for name in ("caxtonclusters", "caxtonupgrades", "caxtonagents"):
        wait_for(lambda name=name: cluster.kubectl(  # type: ignore[misc]
            "get", "crd", f"{name}.caxton.dev", "-o", "jsonpath={.status.conditions[?(@.type=='Established')].status}",
        ).stdout == "True", timeout=30, what=f"CRD {name} established")
    return cluster
