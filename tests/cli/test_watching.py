"""--watch prints the first answer and then only answers that differ (by what the view
says changes), keeps going through a failed look, and stops at --timeout."""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Callable

import pytest
from caxton_cli.errors import CommandError
from caxton_cli.output import View
from caxton_cli.watching import show


def looks(*answers: View | CommandError) -> Callable[[], View]:
    """A look() returning the answers in turn, then the last one for ever."""
    sequence = itertools.chain(answers, itertools.repeat(answers[-1]))

    def look() -> View:
        answer = next(sequence)
        if isinstance(answer, CommandError):
            raise answer
        return answer

    return look


def members(state: str, last_seen: float) -> View:
    data = [{"id": "demo-0", "state": state, "lastSeenSecondsAgo": last_seen}]
    return View(data, headers=("NODE-ID", "STATUS"), rows=[("demo-0", state)], changes=[("demo-0", state)])


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_watch_prints_changes_only(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(watch=True, timeout=0.3, interval=0.01, output=fmt)
    show(args, looks(members("alive", 0.1), members("alive", 0.4), CommandError("demo-0: cannot reach", 2),
                     members("suspect", 3.0), members("suspect", 4.0)))
    out, err = capsys.readouterr()
    if fmt == "table":
        assert out.split() == ["NODE-ID", "STATUS", "demo-0", "alive", "NODE-ID", "STATUS", "demo-0", "suspect"]
    else:
        assert out.count('"state"') == 2  # lastSeenSecondsAgo alone is not a change
    assert err.count("error: demo-0: cannot reach") == 1


def test_without_watch_one_answer(capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(watch=False, output="table")
    show(args, looks(members("alive", 0.1), members("failed", 9.0)))
    assert capsys.readouterr().out.split() == ["NODE-ID", "STATUS", "demo-0", "alive"]
