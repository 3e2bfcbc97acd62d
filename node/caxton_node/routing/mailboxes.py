"""Client mailboxes: replies for names that are not agents (API clients waiting for answers).

A client opens its mailbox by sending a message or reading it. Mailboxes are bounded
three ways: each holds at most `capacity` messages (the oldest goes first), one that
nobody has read or long-polled for `idle_expiry` seconds is removed (what it held goes
to the dead letters), and the number of long polls waiting at once is capped.

A read is taken and encoded under the lock, and the messages go back to the front of
the box if encoding fails, so a read that cannot be answered loses nothing. Long polls
wait without a thread: `watch` calls back (from whichever thread delivers) and the API
wakes its coroutine, so a thousand waiting clients cost no thread pool.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

from caxton_node.messages import Message

CAPACITY = 100_000
MAX_LONG_POLLS = 1024
DEFAULT_IDLE_EXPIRY = 600.0


class Mailbox:
    __slots__ = ("messages", "used", "waiters")

    def __init__(self, now: float) -> None:
        self.messages: deque[Message] = deque()
        self.used = now
        self.waiters: dict[int, Callable[[], object]] = {}


class TooManyLongPolls(RuntimeError):
    pass


class Mailboxes:
    def __init__(self, *, on_expired: Callable[[Message], None], capacity: int = CAPACITY,
                 idle_expiry: float = DEFAULT_IDLE_EXPIRY) -> None:
        self.capacity = capacity
        self.idle_expiry = idle_expiry
        self.on_expired = on_expired
        self.expired = 0  # mailboxes removed for idleness, since start
        self._boxes: dict[str, Mailbox] = {}
        self._cond = threading.Condition()
        self._blocked = 0  # threads in take(timeout>0)
        self._watching = 0
        self._tokens = itertools.count(1)
        self._next_sweep = 0.0

    # -- the set of names ---------------------------------------------------------------

    def __contains__(self, name: object) -> bool:
        return name in self._boxes

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._boxes))

    def __len__(self) -> int:
        return len(self._boxes)

    def open(self, name: str) -> None:
        now = time.monotonic()
        with self._cond:
            box = self._boxes.get(name)
            if box is None:
                self._boxes[name] = Mailbox(now)
            else:
                box.used = now
        if now >= self._next_sweep:
            self.sweep(now)

    def discard(self, name: str) -> None:
        """The name now belongs to an agent: its mailbox goes (an agent reads its own queue)."""
        with self._cond:
            self._boxes.pop(name, None)

    # -- delivery -------------------------------------------------------------------------

    def deliver(self, msg: Message) -> bool:
        """Puts `msg` in its receiver's mailbox; False if the receiver has none."""
        with self._cond:
            box = self._boxes.get(msg.receiver)
            if box is None:
                return False
            if len(box.messages) >= self.capacity:
                box.messages.popleft()
            box.messages.append(msg)
            for wake in list(box.waiters.values()):
                # RuntimeError: the waiter's event loop has closed (the server is stopping).
                with contextlib.suppress(RuntimeError):
                    wake()
            if self._blocked:
                self._cond.notify_all()
        return True

    # -- reading ------------------------------------------------------------------------------

    def take_encoded(self, name: str, limit: int) -> bytes | None:
        """Up to `limit` messages as a JSON array, or None if there are none. They leave the
        box only once encoded: if encoding fails they are put back, in order."""
        with self._cond:
            box = self._boxes.get(name)
            if box is None:
                return None
            box.used = time.monotonic()
            messages = box.messages
            if not messages:
                return None
            taken = [messages.popleft() for _ in range(min(limit, len(messages)))]
            try:
                return b"[" + b",".join(m.encode() for m in taken) + b"]"
            except BaseException:
                messages.extendleft(reversed(taken))
                raise

    def take(self, name: str, limit: int, timeout: float = 0.0) -> list[Message]:
        """Up to `limit` messages, blocking this thread up to `timeout` for the first
        (for in-process callers such as the benchmarks; the API uses `watch`)."""
        with self._cond:
            box = self._boxes.get(name)
            if box is None:
                return []
            box.used = time.monotonic()
            if not box.messages and timeout > 0:
                self._blocked += 1
                try:
                    self._cond.wait_for(lambda: bool(box.messages), timeout)
                finally:
                    self._blocked -= 1
            out: list[Message] = []
            while box.messages and len(out) < limit:
                out.append(box.messages.popleft())
            return out

    def watch(self, name: str, wake: Callable[[], object]) -> Callable[[], None]:
        """Calls `wake` (from the delivering thread) when a message arrives for `name`, at
        once if one is already there; returns the function that stops watching. Raises
        TooManyLongPolls past MAX_LONG_POLLS watchers."""
        with self._cond:
            if self._watching >= MAX_LONG_POLLS:
                raise TooManyLongPolls(f"{MAX_LONG_POLLS} long polls are already waiting; retry later")
            now = time.monotonic()
            box = self._boxes.get(name)
            if box is None:
                box = self._boxes[name] = Mailbox(now)
            token = next(self._tokens)
            box.waiters[token] = wake
            self._watching += 1
            if box.messages:
                wake()

        def stop() -> None:
            with self._cond:
                if box.waiters.pop(token, None) is not None:
                    self._watching -= 1
                box.used = time.monotonic()

        return stop

    # -- bounds -------------------------------------------------------------------------------

    def sweep(self, now: float | None = None) -> int:
        """Removes mailboxes idle for longer than idle_expiry (none with a waiting reader);
        their messages go to `on_expired`. Returns how many went."""
        now = time.monotonic() if now is None else now
        cutoff = now - self.idle_expiry
        with self._cond:
            self._next_sweep = now + min(max(self.idle_expiry / 4, 0.05), 5.0)
            idle = [name for name, box in self._boxes.items()
                    if box.used < cutoff and not box.waiters]
            gone = [self._boxes.pop(name) for name in idle]
            self.expired += len(gone)
        for box in gone:
            for msg in box.messages:
                self.on_expired(msg)
        return len(gone)

    def sizes(self) -> dict[str, int]:
        with self._cond:
            return {name: len(box.messages) for name, box in self._boxes.items()}

    @property
    def long_polls(self) -> int:
        return self._watching
