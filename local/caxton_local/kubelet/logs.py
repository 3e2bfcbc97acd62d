"""Container logs kept like a kubelet keeps them: one file per run, rotated by size.

A container's stdout and stderr come to the kubelet through a pipe; `LogWriter` stamps
each line with the time it arrived and appends it to `<dir>/<run>.log`, where run is the
container's restart count. When that file passes `max_bytes` it is renamed
`<run>.log.<n>` and a new one started; a run keeps at most `max_files` files and only
the current and previous run are kept (what `kubectl logs` and `--previous` can ask for).
When the pipe closes the writer leaves `<run>.done`, so a follower knows the run ended.

`read_lines` and `follow` answer the kubelet API's container-logs query.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MAX_BYTES = 10 * 2**20  # a kubelet's containerLogMaxSize default
MAX_FILES = 5  # containerLogMaxFiles
FOLLOW_POLL = 0.2


def stamp(when: float | None = None) -> str:
    moment = dt.datetime.fromtimestamp(when if when is not None else time.time(), dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_stamp(text: str) -> float:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC).timestamp()


def _pieces(directory: Path, run: int) -> list[Path]:
    """The files of one run, oldest first: rotated pieces by number, then the current file."""
    rotated = sorted(directory.glob(f"{run}.log.*"), key=lambda p: int(p.suffix[1:]))
    current = directory / f"{run}.log"
    return rotated + ([current] if current.exists() else [])


class LogWriter:
    """Copies one run's output from a pipe into its rotated files (a thread per run)."""

    def __init__(self, directory: Path, run: int, *, max_bytes: int = MAX_BYTES, max_files: int = MAX_FILES) -> None:
        self.directory = directory
        self.run = run
        self.max_bytes = max_bytes
        self.max_files = max(max_files, 2)
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.iterdir():  # keep only the previous run's files
            head = old.name.split(".", 1)[0]
            if (head.isdigit() and int(head) < run - 1) or head == str(run):
                old.unlink(missing_ok=True)
        self._path = directory / f"{run}.log"
        self._out = open(self._path, "ab")  # noqa: SIM115 - held for the run's lifetime
        self._rotations = 0

    def write_line(self, line: bytes, when: float | None = None) -> None:
        self._out.write(stamp(when).encode() + b" " + line.rstrip(b"\n") + b"\n")
        self._out.flush()
        if self._out.tell() >= self.max_bytes:
            self._rotate()

    def _rotate(self) -> None:
        self._out.close()
        self._rotations += 1
        self._path.rename(self.directory / f"{self.run}.log.{self._rotations}")
        pieces = _pieces(self.directory, self.run)
        for old in pieces[: max(len(pieces) - (self.max_files - 1), 0)]:
            old.unlink(missing_ok=True)
        self._out = open(self._path, "ab")  # noqa: SIM115

    def pump(self, fd: int) -> None:
        """Reads the pipe until it closes, one stamped line per line of output."""
        pending = b""
        try:
            while chunk := os.read(fd, 65536):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self.write_line(line)
            if pending:
                self.write_line(pending)
        finally:
            os.close(fd)
            self._out.close()
            (self.directory / f"{self.run}.done").touch()

    def start(self, fd: int) -> threading.Thread:
        thread = threading.Thread(target=self.pump, args=(fd,), name=f"log-{self.directory.name}-{self.run}",
                                  daemon=True)
        thread.start()
        return thread


@dataclass(frozen=True)
class LogQuery:
    """The container-logs parameters kubectl sends (follow, previous, tailLines, ...)."""

    follow: bool = False
    previous: bool = False
    tail_lines: int | None = None
    since: float | None = None  # epoch seconds (sinceSeconds or sinceTime)
    timestamps: bool = False
    limit_bytes: int | None = None


def _render(raw: bytes, query: LogQuery) -> bytes | None:
    """One stored line as kubectl shows it, or None when it is before `since`."""
    head, _, rest = raw.partition(b" ")
    if query.since is not None:
        try:
            if parse_stamp(head.decode()) < query.since:
                return None
        except ValueError:
            pass
    return raw if query.timestamps else rest


def _matching(lines: Iterator[bytes], query: LogQuery) -> list[bytes]:
    keep: deque[bytes] = deque(maxlen=query.tail_lines)
    for raw in lines:
        line = _render(raw, query)
        if line is not None:
            keep.append(line)
    return list(keep)


def _complete_lines(f: BinaryIO) -> Iterator[bytes]:
    """Whole lines from `f`'s position; a partial last line is left unread."""
    while raw := f.readline():
        if not raw.endswith(b"\n"):
            f.seek(-len(raw), os.SEEK_CUR)
            return
        yield raw


def _stored(pieces: list[Path]) -> Iterator[bytes]:
    for piece in pieces:
        try:
            with open(piece, "rb") as f:
                yield from _complete_lines(f)
        except FileNotFoundError:
            continue  # rotated away while we read


def read_lines(directory: Path, run: int, query: LogQuery) -> list[bytes]:
    """The stored lines of `run` that match the query (tail and since applied)."""
    return _matching(_stored(_pieces(directory, run)), query)


def follow(directory: Path, run: int, query: LogQuery, *, stopped: Callable[[], bool]) -> Iterator[bytes]:
    """The query's lines, then every new line until the run ends (`<run>.done`) or `stopped()`.

    Reads the pieces oldest first, moving to the next piece when one is rotated, so a
    rotation while following loses nothing (unless the rotation limit deleted a piece first).
    What is there at the first end of the current file is the backlog tail/since apply to."""
    current = directory / f"{run}.log"
    done = directory / f"{run}.done"
    f = _open_after(directory, run, None)
    backlog: list[bytes] | None = []
    last: int | None = None  # the inode of the last piece read to its end
    live = LogQuery(timestamps=query.timestamps)
    try:
        while not stopped():
            if f is None:  # nothing written yet, or between a rotation's rename and its new file
                f = _open_after(directory, run, last)
                if f is not None:
                    continue
            else:
                lines = list(_complete_lines(f))
                if not lines and _replaced(current, f):  # rotated: what was written before the rename,
                    lines = list(_complete_lines(f))  # then the next piece
                    if not lines:
                        last = os.fstat(f.fileno()).st_ino
                        f.close()
                        f = _open_after(directory, run, last)
                        continue
                if lines:
                    if backlog is not None:
                        backlog.extend(lines)
                    else:
                        yield from (line for raw in lines if (line := _render(raw, live)) is not None)
                    continue
            if backlog is not None:  # caught up: the backlog ends here
                yield from _matching(iter(backlog), query)
                backlog = None
                continue
            if done.exists():  # the run ended: what it wrote before that is all there is
                if f is None and (f := _open_after(directory, run, last)) is not None:
                    continue  # its last piece appeared since we looked
                if f is not None and _replaced(current, f):
                    continue  # it rotated since we looked: finish the later pieces first
                for raw in _complete_lines(f) if f is not None else ():
                    if (line := _render(raw, live)) is not None:
                        yield line
                return
            time.sleep(FOLLOW_POLL)
    finally:
        if f is not None:
            f.close()


def _after(directory: Path, run: int, ino: int | None) -> list[tuple[Path, int]]:
    """The run's pieces (with inodes) after the one with inode `ino` (all of them for None,
    or when that piece was deleted by the rotation limit: every piece left is newer)."""
    listing = []
    for piece in _pieces(directory, run):
        try:
            listing.append((piece, piece.stat().st_ino))
        except FileNotFoundError:
            continue
    inodes = [i for _, i in listing]
    return listing[inodes.index(ino) + 1:] if ino in inodes else listing


def _open_after(directory: Path, run: int, ino: int | None) -> BinaryIO | None:
    """The piece after `ino`, open, or None until there is one. Listing and opening race
    with a rotation (the name may then be another file), so it checks what it opened."""
    for _ in range(100):
        later = _after(directory, run, ino)
        if not later:
            return None
        try:
            f = open(later[0][0], "rb")  # noqa: SIM115
        except FileNotFoundError:
            continue
        again = _after(directory, run, ino)
        if again and again[0][1] == os.fstat(f.fileno()).st_ino:
            return f
        f.close()
    return None


def _replaced(path: Path, f: BinaryIO) -> bool:
    """True when `path` now names another file than the one open (it was rotated)."""
    try:
        return os.stat(path).st_ino != os.fstat(f.fileno()).st_ino
    except FileNotFoundError:
        return True
