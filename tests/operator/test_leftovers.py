"""Which objects under a cluster's names are leftovers of a deleted CaxtonCluster of the same
name (the new cluster waits for the garbage collector instead of adopting them)."""

from __future__ import annotations

from typing import Any

import pytest
from caxton_operator.handlers.cluster import _owned_by_another


def _obj(*owners: tuple[str, str]) -> dict[str, Any]:
    return {"metadata": {"ownerReferences": [{"kind": kind, "uid": uid} for kind, uid in owners]}}


@pytest.mark.parametrize(("obj", "leftover"), [
    (None, False),  # nothing there: made fresh
    (_obj(("CaxtonCluster", "new")), False),  # ours
    (_obj(("CaxtonCluster", "old")), True),  # the deleted namesake's
    (_obj(), False),  # made by someone else without an owner: not the collector's to remove
    (_obj(("StatefulSet", "old")), False),  # not a CaxtonCluster's
])
def test_only_objects_of_another_caxton_cluster_are_leftovers(obj: dict[str, Any] | None, leftover: bool) -> None:
    assert _owned_by_another(obj, "new") is leftover
