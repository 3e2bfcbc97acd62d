"""A counting load generator: numbered messages to echo agents, every reply checked.

What upgrades, rotations, rebalances and partitions promise is "nothing lost", so
their tests need a client that counts. Each message carries a sequence number; it
is sent at-least-once (resent through another node when no reply came back within
`reply_timeout`) at a target rate, round-robin over the agents and the nodes, the
way a client behind a load balancer would. Replies come back to one mailbox per
entry node, read with long polls. The report gives the figures:

- lost: numbered messages sent but never answered, even after the retries, when the run ended;
- unsent: numbers the client made but had not posted yet when the run ended (the client,
  not the system, was behind; `rate` counts only what was sent);
- duplicated: replies beyond the first for a number (at-least-once makes some);
- reordered: replies in one stream (agent, mailbox) arriving below the highest number
  seen in that stream;
- retried, and latency from the first send to the first reply;
- dropped: numbers the system accepted (202) but answered only after a resend, and only once:
  the accepted copy vanished and the client's resend saved it (a slow copy answers twice).

Nodes are reached at their own addresses (pods live on 127.x.y.z here, so that is
what a client in the cluster does); `endpoints` is asked again whenever a node
fails, so restarted pods with new addresses are found. Bounded: `stop()` waits at
most `drain_timeout` for outstanding replies.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

Endpoints = Callable[[], dict[str, str]]  # node name -> base URL of its API


@dataclass
class _Pending:
    agent: str
    first_sent: float
    last_sent: float
    attempts: int = 1
    accepted: bool = False


@dataclass
class LoadReport:
    sent: int  # numbers posted at least once
    unsent: int  # numbers made but still waiting for a sender when the run ended (the client was behind)
    attempts: int
    retried: int
    answered: int
    lost: int
    duplicated: int
    reordered: int
    errors: dict[str, int]
    seconds: float
    p50_ms: float
    p99_ms: float
    lost_numbers: list[int] = field(default_factory=list)
    dropped_numbers: list[int] = field(default_factory=list)

    @property
    def dropped(self) -> int:
        return len(self.dropped_numbers)

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"sent": self.sent, "unsent": self.unsent,
                "attempts": self.attempts, "retried": self.retried, "answered": self.answered,
                "lost": self.lost, "duplicated": self.duplicated, "reordered": self.reordered,
                "errors": dict(self.errors), "seconds": round(self.seconds, 2), "ratePerSecond": round(self.rate, 1),
                "p50Ms": round(self.p50_ms, 2), "p99Ms": round(self.p99_ms, 2),
                "dropped": self.dropped, "lostNumbers": self.lost_numbers[:20],
                "droppedNumbers": self.dropped_numbers[:20]}


class MessageLoad:
    def __init__(self, endpoints: Endpoints, token: str | Callable[[], str], agents: list[str], *,
                 rate: float = 200.0, reply_timeout: float = 5.0, senders: int = 0, name: str = "") -> None:
        if not agents:
            raise ValueError("MessageLoad needs at least one agent")
        self._endpoints_source = endpoints
        # A callable token is asked again with the endpoints (every 2 s), as a client that reads
        # its token from a Secret does: a token rotation then needs nothing from the test.
        self._token_source = token if callable(token) else (lambda: token)
        self._token = self._token_source()
        self.agents = list(agents)
        self.rate = rate
        self.reply_timeout = reply_timeout
        self.name = name or f"load-{uuid.uuid4().hex[:6]}"
        # One sender per agent (up to 16): a slow node holds up only the messages behind it.
        senders = senders or min(len(self.agents), 16)
        self._senders = senders
        self._lock = threading.Lock()
        self._pending: dict[int, _Pending] = {}
        self._answered: dict[int, float] = {}  # number -> latency (s)
        self._duplicated = 0
        self._reordered = 0
        self._attempts = 0
        self._retried = 0
        self._errors: Counter[str] = Counter()
        self._stream_high: dict[tuple[str, str], int] = {}
        self._offered = 0  # numbers made; a number counts as sent once it was first posted
        self._first_posted: set[int] = set()
        self._resent: set[int] = set()  # accepted, then resent for want of a reply
        self._twice: set[int] = set()  # answered more than once
        # One queue per sender, chosen by agent: one agent's messages leave in number order, so a
        # reply out of order is the system's doing, not ours.
        self._work: list[queue.Queue[tuple[int, int]]] = [queue.Queue() for _ in range(senders)]
        self._generating = threading.Event()
        self._running = threading.Event()
        self._threads: list[threading.Thread] = []
        self._endpoints: dict[str, str] = {}
        self._endpoints_at = 0.0
        self._rotation = itertools.count()
        self._pollers: dict[str, threading.Thread] = {}
        self._started = 0.0
        self._stopped = 0.0
        self._local = threading.local()

    # -- endpoints ---------------------------------------------------------------------------------

    def _refresh(self, force: bool = False) -> dict[str, str]:
        now = time.monotonic()
        if force or now - self._endpoints_at > 2.0 or not self._endpoints:
            try:
                found = dict(self._endpoints_source())
                self._token = self._token_source() or self._token
            except Exception as err:  # the source is a test's own lookup; keep the last answer
                self._count_error(f"endpoints: {type(err).__name__}")
                found = {}
            with self._lock:
                if found:
                    self._endpoints = found
                self._endpoints_at = now
                for node in found:
                    if node not in self._pollers:
                        poller = threading.Thread(target=self._poll, args=(node,), name=f"poll-{node}", daemon=True)
                        self._pollers[node] = poller
                        self._threads.append(poller)
                        poller.start()
        return self._endpoints

    def _client(self) -> httpx.Client:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = httpx.Client(timeout=5.0, event_hooks={"request": [self._sign]})
        return client

    def _sign(self, request: httpx.Request) -> None:
        request.headers["X-Caxton-Token"] = self._token

    def mailbox(self, node: str) -> str:
        return f"{self.name}-{node}"

    def _count_error(self, kind: str) -> None:
        with self._lock:
            self._errors[kind] += 1

    # -- sending ----------------------------------------------------------------------------------------

    def start(self) -> MessageLoad:
        self._running.set()
        self._generating.set()
        self._refresh(force=True)
        for node in list(self._endpoints):  # mailboxes exist before the first reply comes back
            self._open_mailbox(node)
        self._started = time.monotonic()
        for i in range(self._senders):
            self._spawn(functools.partial(self._send_loop, self._work[i]), f"send-{i}")
        self._spawn(self._pace, "pace")
        self._spawn(self._retry_loop, "retry")
        return self

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _open_mailbox(self, node: str) -> None:
        url = self._endpoints.get(node)
        if url:
            with contextlib.suppress(httpx.HTTPError):
                self._client().get(f"{url}/v1/mailboxes/{self.mailbox(node)}")

    def _pace(self) -> None:
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        number = 0
        while self._generating.is_set():
            now = time.monotonic()
            if now < next_at:
                time.sleep(min(next_at - now, 0.05))
                continue
            number += 1
            with self._lock:
                self._offered = number
            self._enqueue(number, 0)
            next_at += interval
            if now - next_at > 1.0:  # fell behind (the machine is busy): do not burst to catch up
                next_at = now

    def _enqueue(self, number: int, attempt: int) -> None:
        self._work[(number % len(self.agents)) % len(self._work)].put((number, attempt))

    def _send_loop(self, work: queue.Queue[tuple[int, int]]) -> None:
        while self._running.is_set():
            try:
                item = work.get(timeout=0.2)
            except queue.Empty:
                continue
            self._send(*item)

    def _send(self, number: int, attempt: int) -> None:
        agent = self.agents[number % len(self.agents)]
        endpoints = self._refresh()
        nodes = sorted(endpoints)
        if not nodes:
            self._schedule_retry(number, agent, "no endpoints")
            return
        node = nodes[(number + attempt) % len(nodes)]
        now = time.monotonic()
        with self._lock:
            if number in self._answered:
                return
            pending = self._pending.get(number)
            self._first_posted.add(number)
            if pending is None:
                self._pending[number] = pending = _Pending(agent, now, now)
            else:
                pending.attempts += 1
                pending.last_sent = now
                self._retried += 1
            self._attempts += 1
        message = {"performative": "request", "sender": self.mailbox(node), "receiver": agent,
                   "conversation_id": f"{self.name}-{number}", "reply_with": str(number),
                   "content": {"n": number}}
        try:
            resp = self._client().post(f"{endpoints[node]}/v1/messages", json=message)
        except httpx.HTTPError as err:
            self._count_error(f"send: {type(err).__name__}")
            self._refresh(force=True)
            self._schedule_retry(number, agent, "")
            return
        if resp.status_code != 202:
            self._count_error(f"send: HTTP {resp.status_code}")
            self._schedule_retry(number, agent, "")
            return
        with self._lock:
            if number in self._pending:
                self._pending[number].accepted = True

    def _schedule_retry(self, number: int, agent: str, why: str) -> None:
        """A send that failed outright is retried soon (through the next node), not after reply_timeout."""
        if why:
            self._count_error(f"send: {why}")
        with self._lock:
            pending = self._pending.get(number)
            now = time.monotonic()
            if pending is None:
                self._pending[number] = pending = _Pending(agent, now, now, attempts=0)
            pending.last_sent = now - self.reply_timeout + 0.3

    def _retry_loop(self) -> None:
        while self._running.is_set():
            time.sleep(0.1)
            now = time.monotonic()
            with self._lock:
                due = [n for n, p in self._pending.items() if now - p.last_sent >= self.reply_timeout]
                self._resent.update(n for n in due if self._pending[n].accepted)
                for n in due:  # not due again until this resend had its chance
                    self._pending[n].last_sent = now
            for n in sorted(due):
                self._enqueue(n, self._pending[n].attempts if n in self._pending else 1)

    # -- replies -------------------------------------------------------------------------------------------

    def _poll(self, node: str) -> None:
        mailbox = self.mailbox(node)
        while self._running.is_set():
            url = self._endpoints.get(node)
            if url is None:
                time.sleep(0.5)
                continue
            try:
                resp = self._client().get(f"{url}/v1/mailboxes/{mailbox}", params={"wait": 1, "limit": 5000},
                                          timeout=10.0)
            except httpx.HTTPError as err:
                self._count_error(f"poll: {type(err).__name__}")
                time.sleep(0.3)
                self._refresh(force=True)
                continue
            if resp.status_code != 200:
                self._count_error(f"poll: HTTP {resp.status_code}")
                time.sleep(0.3)
                continue
            for reply in resp.json():
                self._record(reply, mailbox)

    def _record(self, reply: dict[str, Any], mailbox: str) -> None:
        original = reply.get("content")
        try:
            number = int(original["content"]["n"])  # type: ignore[index]
        except (TypeError, KeyError, ValueError):
            self._count_error("reply: not one of ours")
            return
        now = time.monotonic()
        with self._lock:
            if number in self._answered:
                self._duplicated += 1
                self._twice.add(number)
                return
            pending = self._pending.pop(number, None)
            self._answered[number] = now - pending.first_sent if pending else 0.0
            stream = (str(reply.get("sender")), mailbox)
            high = self._stream_high.get(stream, 0)
            if number < high:
                self._reordered += 1
            else:
                self._stream_high[stream] = number

    # -- the end -------------------------------------------------------------------------------------------

    def outstanding(self) -> int:
        with self._lock:
            return len(self._pending)

    def stop(self, drain_timeout: float = 30.0) -> LoadReport:
        """Stops generating, waits up to `drain_timeout` for outstanding replies (resending as
        usual), then stops every thread and returns the report."""
        self._generating.clear()
        self._stopped = time.monotonic()
        deadline = time.monotonic() + drain_timeout
        while time.monotonic() < deadline and (self.outstanding() or any(not w.empty() for w in self._work)):
            time.sleep(0.1)
        time.sleep(0.5)  # late duplicates still count
        self._running.clear()
        for thread in self._threads:
            thread.join(timeout=12)
        return self.report()

    def report(self) -> LoadReport:
        with self._lock:
            latencies = sorted(self._answered.values())
            lost = sorted(n for n in self._first_posted if n not in self._answered)
            unsent = self._offered - len(self._first_posted)

            def pct(q: float) -> float:
                return latencies[min(len(latencies) - 1, int(len(latencies) * q))] * 1000 if latencies else 0.0

            end = self._stopped or time.monotonic()
            return LoadReport(
                sent=len(self._first_posted), unsent=unsent,
                attempts=self._attempts, retried=self._retried, answered=len(self._answered),
                lost=len(lost), duplicated=self._duplicated, reordered=self._reordered, errors=dict(self._errors),
                seconds=end - self._started if self._started else 0.0, p50_ms=pct(0.5), p99_ms=pct(0.99),
                lost_numbers=lost, dropped_numbers=sorted(n for n in self._resent
                                                          if n in self._answered and n not in self._twice),
            )
