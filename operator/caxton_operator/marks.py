"""How the operator's handlers coordinate on one CaxtonCluster.

Annotations on the CaxtonCluster (they survive an operator restart, and are not
user-facing status): which CaxtonUpgrade holds the cluster (one upgrade at a time) and
which nodes are being drained (no agents are placed there), and the last explicit
rebalance request (answered in status.rebalance under its id). A per-cluster lock keeps
provisioning and the roller from writing the StatefulSet at the same moment.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

UPGRADE = "caxton.dev/upgrade"  # name of the CaxtonUpgrade holding the cluster
DRAINING = "caxton.dev/draining"  # comma-separated pods that take no agents
REBALANCE = "caxton.dev/rebalance"  # JSON {id, strategy, dryRun}: a `cluster rebalance` request
IMPLICIT = "caxton.dev/implicit"  # label of a CaxtonUpgrade made for an edit of spec.version

_locks: defaultdict[str, threading.RLock] = defaultdict(threading.RLock)


def cluster_lock(namespace: str, name: str) -> threading.RLock:
    return _locks[f"{namespace}/{name}"]


def annotations_of(obj: Any) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def draining(obj: Any) -> set[str]:
    return {p for p in annotations_of(obj).get(DRAINING, "").split(",") if p}
