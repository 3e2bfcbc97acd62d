"""CLI tests share the node fixtures."""

from tests.node.conftest import agents, node_factory

__all__ = ["agents", "node_factory"]
