"""Faulty node releases for tests: image-table entries that map a node image tag to a wrapper
in tests/faults/ (see its README). Only the process kubelet has an image table."""

from __future__ import annotations

from pathlib import Path

import yaml
from caxton_local.kubelet.images import PYTHON_BIN

from tests.support.cluster import ClusterUnderTest

FAULTS = Path(__file__).resolve().parents[1] / "faults"
NODE_IMAGE = "ghcr.io/caxton/caxton-node"


def add_faulty_release(cluster: ClusterUnderTest, tag: str, fault: str) -> None:
    """`ghcr.io/caxton/caxton-node:<tag>` runs the wrapper tests/faults/<fault>/caxton."""
    assert cluster.plane is not None, "faulty releases need the process kubelet's image table"
    assert (FAULTS / fault / "caxton").exists(), fault
    table = cluster.plane.layout.root / "images.yaml"
    raw = yaml.safe_load(table.read_text()) if table.exists() else None
    images = [e for e in (raw or {}).get("images", []) if not (e.get("repository") == NODE_IMAGE
                                                               and e.get("tag") == tag)]
    images.append({"repository": NODE_IMAGE, "tag": tag, "entrypoint": ["caxton"],
                   "path": [str(FAULTS / fault), PYTHON_BIN], "env": {"CAXTON_VERSION": "{tag}"}})
    table.write_text(yaml.safe_dump({"images": images}))
