"""The process kubelet's container log files: rotation, runs, and kubectl's log options."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from caxton_local.kubelet.logs import LogQuery, LogWriter, follow, read_lines, stamp
from caxton_local.kubelet.server import BadQuery, parse_query


def _write(directory: Path, run: int, lines: list[bytes], **kw: int) -> LogWriter:
    writer = LogWriter(directory, run, **kw)
    read, write = os.pipe()
    thread = writer.start(read)
    os.write(write, b"\n".join(lines) + b"\npartial-without-newline")
    os.close(write)
    thread.join(timeout=10)
    return writer


def test_lines_come_back_in_order_with_a_partial_last_line(tmp_path: Path) -> None:
    _write(tmp_path, 0, [b"one", b"two"])
    assert read_lines(tmp_path, 0, LogQuery()) == [b"one\n", b"two\n", b"partial-without-newline\n"]
    assert (tmp_path / "0.done").exists()


def test_rotation_keeps_at_most_max_files_and_the_newest_lines(tmp_path: Path) -> None:
    lines = [f"line {i:04d}".encode() for i in range(2000)]
    _write(tmp_path, 0, lines, max_bytes=4096, max_files=3)
    files = sorted(p.name for p in tmp_path.glob("0.log*"))
    assert len(files) == 3, files
    assert all(p.stat().st_size < 4096 + 100 for p in tmp_path.glob("0.log*"))
    kept = read_lines(tmp_path, 0, LogQuery())
    assert kept[-1] == b"partial-without-newline\n"
    numbers = [int(line.split()[1]) for line in kept[:-1]]
    assert numbers == list(range(numbers[0], 2000)), "kept lines are the newest, contiguous and in order"
    assert numbers[0] > 0, "older lines were rotated away"


def test_only_the_current_and_previous_run_are_kept(tmp_path: Path) -> None:
    for run in range(4):
        _write(tmp_path, run, [f"run {run}".encode()])
    assert sorted({p.name.split(".")[0] for p in tmp_path.iterdir()}) == ["2", "3"]
    assert read_lines(tmp_path, 2, LogQuery())[0] == b"run 2\n"


def test_tail_since_and_timestamps(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path, 0)
    writer.write_line(b"old", when=1000.0)
    writer.write_line(b"new", when=2000.0)
    assert read_lines(tmp_path, 0, LogQuery(tail_lines=1)) == [b"new\n"]
    assert read_lines(tmp_path, 0, LogQuery(tail_lines=0)) == []
    assert read_lines(tmp_path, 0, LogQuery(since=1500.0)) == [b"new\n"]
    assert read_lines(tmp_path, 0, LogQuery(timestamps=True, tail_lines=1)) == [stamp(2000.0).encode() + b" new\n"]


def test_follow_sees_new_lines_across_a_rotation_and_ends_with_the_run(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path, 0, max_bytes=200, max_files=5)
    read, write = os.pipe()
    os.write(write, b"before\n")
    thread = writer.start(read)
    got: list[bytes] = []
    follower = threading.Thread(target=lambda: got.extend(
        follow(tmp_path, 0, LogQuery(follow=True), stopped=lambda: False)))
    follower.start()
    for i in range(20):  # about 700 bytes with stamps: several rotations while followed
        os.write(write, f"after {i}\n".encode())
    os.close(write)
    thread.join(timeout=10)
    follower.join(timeout=20)
    assert not follower.is_alive(), "follow ends when the run's output closes"
    assert got == [b"before\n", *(f"after {i}\n".encode() for i in range(20))], got


@pytest.mark.parametrize(("raw", "expected"), [
    ("follow=true&tailLines=5", LogQuery(follow=True, tail_lines=5)),
    ("previous=true&timestamps=true&limitBytes=10", LogQuery(previous=True, timestamps=True, limit_bytes=10)),
    ("sinceSeconds=60", LogQuery(since=940.0)),
    ("sinceTime=1970-01-01T00:10:00Z", LogQuery(since=600.0)),
])
def test_kubectl_options_parse(raw: str, expected: LogQuery) -> None:
    assert parse_query(raw, now=1000.0) == expected


@pytest.mark.parametrize("raw", ["tailLines=x", "tailLines=-1", "sinceTime=yesterday"])
def test_bad_options_are_refused_with_the_reason(raw: str) -> None:
    with pytest.raises(BadQuery, match=raw.split("=")[0]):
        parse_query(raw, now=0.0)
