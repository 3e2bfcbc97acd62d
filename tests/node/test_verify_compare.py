"""`cluster verify`'s comparison as a pure function: each kind of difference, from views."""

from __future__ import annotations

from typing import Any

import pytest
from caxton_node.verify import compare, directory_digest


def view(node: str, *, agents: tuple[str, ...] = (), mailboxes: tuple[str, ...] = (), version: str = "1.0.0",
         members: dict[str, tuple[str, str]] | None = None,
         directory: dict[str, list[str]] | None = None) -> dict[str, Any]:
    members = members or {}
    directory = directory or {}
    return {"node": node, "version": version, "agents": list(agents), "mailboxes": list(mailboxes),
            "members": {m: {"state": s, "version": v, "api": ""} for m, (s, v) in members.items()},
            "directory": directory, "directoryDigest": directory_digest(directory), "directoryComplete": True}


BOTH = {"a": ("alive", "1.0.0"), "b": ("alive", "1.0.0")}


@pytest.mark.parametrize(("views", "expected"), [
    ({"a": view("a", agents=("x",), mailboxes=("client",), members=BOTH, directory={"a": ["client", "x"], "b": []}),
      "b": view("b", members=BOTH, directory={"a": ["client", "x"], "b": []})},
     []),
    ({"a": view("a", members=BOTH, directory={"a": ["x"], "b": []}),
      "b": view("b", members=BOTH, directory={"a": [], "b": []})},
     ["stale directory entry: a lists x on a, which a does not run"]),
    ({"a": view("a", agents=("x",), members=BOTH, directory={"a": ["x"], "b": []}),
      "b": view("b", members=BOTH, directory={"a": [], "b": []})},
     ["missing directory entry: a runs x, absent from b's directory"]),
    ({"a": view("a", members={**BOTH, "c": ("alive", "1.0.0")}, directory={"a": [], "b": [], "c": []}),
      "b": view("b", members={**BOTH, "c": ("failed", "1.0.0")}, directory={"a": [], "b": []}),
      "c": view("c", members={**BOTH, "c": ("alive", "1.0.0")}, directory={"a": [], "b": [], "c": []})},
     ["membership differs on c: up for a, c; b sees it failed"]),
    ({"a": view("a", version="2.0.0", members=BOTH, directory={"a": [], "b": []}),
      "b": view("b", members=BOTH, directory={"a": [], "b": []})},
     ["version differs for a: b sees 1.0.0, a runs 2.0.0"]),
    ({"a": view("a", agents=("x",), members=BOTH, directory={"a": ["x"], "b": ["x"]}),
      "b": view("b", agents=("x",), members=BOTH, directory={"a": ["x"], "b": ["x"]})},
     ["agent x runs on several nodes: a, b"]),
], ids=["consistent", "stale", "missing", "membership", "version", "duplicate"])
def test_compare_names_each_difference(views: dict[str, dict[str, Any]], expected: list[str]) -> None:
    found = [d for d in compare(views, {}) if not d.startswith("directory digests differ")]
    assert found == expected


def test_digests_differ_exactly_when_directories_do() -> None:
    same = {"a": view("a", members=BOTH, directory={"a": [], "b": ["y"]}),
            "b": view("b", agents=("y",), members=BOTH, directory={"a": [], "b": ["y"]})}
    assert compare(same, {}) == []
    stale = {**same, "a": view("a", members=BOTH, directory={"a": [], "b": []})}
    assert any(d.startswith("directory digests differ: a ") for d in compare(stale, {}))


def test_an_unreadable_member_is_a_difference() -> None:
    assert compare({"a": view("a", members=BOTH, directory={"a": [], "b": []})}, {"b": "timed out"})[0] == \
        "b: cannot read its view (timed out)"
