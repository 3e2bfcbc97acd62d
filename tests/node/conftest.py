"""Fixtures for node tests: example agents built from source, real node processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.agents import build_example_agents
from tests.support.nodes import NodeFactory


@pytest.fixture(scope="session")
def agents() -> dict[str, bytes]:
    return build_example_agents()


@pytest.fixture
def node_factory(tmp_path: Path) -> Iterator[NodeFactory]:
    factory = NodeFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.stop_all()
