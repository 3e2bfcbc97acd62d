"""The command tree of both front doors: every command has a working example in its
--help, global flags mean the same before and after the command, and every handler
the tree names exists."""

from __future__ import annotations

import argparse
import importlib
import shlex
from collections.abc import Iterator

import pytest
from caxton_cli.parser import build

PROGS = ("caxton", "kubectl caxton")
SHELL_OPERATORS = {">", ">>", "|", "&&", ";"}


def leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[
        tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every command that runs something (a parser without subcommands), with its path."""
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not groups:
        yield path, parser
        return
    seen: set[int] = set()
    for group in groups:
        for name, child in group.choices.items():
            if id(child) not in seen:  # an alias maps to the same parser
                seen.add(id(child))
                yield from leaves(child, (*path, name))


def examples(prog: str, parser: argparse.ArgumentParser) -> list[list[str]]:
    """The example command lines of a --help epilog, as argv without the program name."""
    epilog = parser.epilog or ""
    found = []
    for line in epilog.splitlines():
        line = line.strip()
        if line.startswith(prog + " ") and "examples:" in epilog:
            words = shlex.split(line[len(prog):])
            cut = next((i for i, w in enumerate(words) if w in SHELL_OPERATORS), len(words))
            found.append(words[:cut])
    return found


def all_leaves() -> list[tuple[str, tuple[str, ...]]]:
    return [(prog, path) for prog in PROGS for path, _ in leaves(build(prog))]


def leaf(prog: str, path: tuple[str, ...]) -> argparse.ArgumentParser:
    return dict(leaves(build(prog)))[path]


@pytest.mark.parametrize(("prog", "path"), all_leaves(), ids=lambda v: " ".join(v) if isinstance(v, tuple) else v)
def test_every_command_has_an_example_that_parses(prog: str, path: tuple[str, ...]) -> None:
    found = examples(prog, leaf(prog, path))
    assert found, f"`{prog} {' '.join(path)} --help` shows no example"
    for argv in found:
        args = build(prog).parse_args(argv)  # SystemExit (a usage error) fails the test
        assert args.run


def test_the_walk_finds_every_command() -> None:
    paths = {" ".join(path) for path, _ in leaves(build("kubectl caxton"))}
    assert {"cluster members", "cluster scale", "agents deploy", "queue stats", "completion"} <= paths
    assert "local up" not in paths and "local up" in {" ".join(p) for p, _ in leaves(build("caxton"))}


def test_a_command_without_an_example_is_refused() -> None:
    from caxton_cli.verbs import Tree

    sub = argparse.ArgumentParser().add_subparsers()
    with pytest.raises(ValueError, match="needs an example"):
        Tree("kubectl caxton", "kubectl").verb(sub, "nothing", run="x:y", help="", examples=[])


@pytest.mark.parametrize(("prog", "path"), all_leaves(), ids=lambda v: " ".join(v) if isinstance(v, tuple) else v)
def test_every_handler_exists(prog: str, path: tuple[str, ...]) -> None:
    run = leaf(prog, path).get_default("run")
    module, _, function = run.partition(":")
    assert callable(getattr(importlib.import_module(module), function)), run


KUBECTL_FLAGS = ["-n", "prod", "--cluster", "demo", "--node", "demo-2", "--kubeconfig", "/k", "--context", "c",
                 "-o", "json"]
DIRECT_FLAGS = ["--api", "http://10.0.0.1:8080", "--token-file", "/t", "-o", "yaml"]


def connected(prog: str) -> list[tuple[str, list[str]]]:
    """The first example of every command that talks to a cluster or node."""
    found = []
    for path, parser in leaves(build(prog)):
        if any({"--api", "--kubeconfig"} & set(a.option_strings) for a in parser._actions):
            found.append((" ".join(path), examples(prog, parser)[0]))
    return found


@pytest.mark.parametrize(("prog", "flags"), [("kubectl caxton", KUBECTL_FLAGS), ("caxton", DIRECT_FLAGS)])
def test_global_flags_mean_the_same_before_and_after_the_command(prog: str, flags: list[str]) -> None:
    names = [f.lstrip("-").replace("-", "_") for f in flags[::2]]
    names = ["namespace" if n == "n" else "output" if n == "o" else n for n in names]
    commands = connected(prog)
    assert len(commands) > 15
    for command, argv in commands:
        before = vars(build(prog).parse_args([*flags, *argv]))
        after = vars(build(prog).parse_args([*argv, *flags]))
        expected = dict(zip(names, flags[1::2], strict=True))
        assert {n: before[n] for n in names} == expected, command
        assert {n: after[n] for n in names} == expected, command


def test_flags_between_noun_and_verb_and_the_last_one_wins() -> None:
    args = build("kubectl caxton").parse_args(["-n", "a", "cluster", "-n", "b", "members", "--cluster", "demo"])
    assert (args.namespace, args.cluster, args.output) == ("b", "demo", "table")
    args = build("kubectl caxton").parse_args(["cluster", "status", "--node", "demo-2", "-n", "c"])
    assert (args.namespace, args.node, args.cluster) == ("c", "demo-2", None)


def test_defaults_without_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", "/from/env")
    args = build("kubectl caxton").parse_args(["memory", "stats"])
    assert (args.namespace, args.cluster, args.node, args.kubeconfig, args.output) == (
        None, None, None, None, "table")  # None: the client reads $KUBECONFIG (several files, merged)
