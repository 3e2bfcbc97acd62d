"""Plays the election's rules out on a real Lease: create, take over or renew it with optimistic
concurrency (a conflicting write loses, so two candidates never both win), stand by until it is
ours, keep it renewed while the operator runs, and release it on a clean stop so a standby takes
over at once instead of after the lease duration."""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
from caxton_kube import Kube, KubeError

from caxton_operator.leadership.election import Observation, Record, Step, Timing, next_step, observe, still_leading

log = logging.getLogger(__name__)


def _now_micro() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseLock:
    """One candidate for the Lease `namespace/name`, known to the others as `identity`."""

    def __init__(self, kube: Kube, namespace: str, name: str, identity: str, timing: Timing,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.kube, self.identity, self.timing, self.clock = kube, identity, timing, clock
        self.collection = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        self.path = f"{self.collection}/{name}"
        self.name = name
        self._seen: Observation | None = None
        self._lease: dict[str, Any] | None = None

    def _call(self, method: str, path: str, until: float, body: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """One API call, given up by `until` (this clock), so a hung call cannot keep a leader acting
        past its deadline (client-go bounds its renewals by a context the same way)."""
        budget = min(self.timing.renew_deadline / 2, until - self.clock())
        if budget <= 0:
            raise TimeoutError("no time left before the deadline")
        resp = self.kube.raw(method, path, json=body, timeout=budget)
        if method == "GET" and resp.status_code == 404:
            return None
        if resp.status_code >= 400:
            try:
                message = resp.json().get("message", resp.text)
            except ValueError:
                message = resp.text
            raise KubeError(resp.status_code, message)
        result: dict[str, Any] = resp.json()
        return result

    def try_acquire_or_renew(self, until: float | None = None) -> bool:
        """One round, finished or given up by `until` (default: a renew deadline from now):
        True if we hold the Lease after it."""
        until = self.clock() + self.timing.renew_deadline if until is None else until
        try:
            self._lease = self._call("GET", self.path, until)
            record = Record.of(self._lease) if self._lease else None
            self._seen = observe(self._seen, record, self.clock())
            step = next_step(self._seen, self.identity, self.clock())
            if step is Step.WAIT:
                return False
            if step is Step.CREATE:
                self._lease = self._call("POST", self.collection, until, self._held(transitions=0, acquired=True))
            else:
                assert record is not None and self._lease is not None
                transitions = record.transitions + (step is Step.TAKE)
                self._lease = self._call("PUT", self.path, until,
                                         self._held(transitions=transitions, acquired=step is Step.TAKE))
            assert self._lease is not None
            self._seen = observe(self._seen, Record.of(self._lease), self.clock())
            if step is not Step.RENEW:
                log.info("acquired the Lease %s as %s (%s)", self.name, self.identity, step.value)
            return True
        except KubeError as err:
            # 409: another candidate wrote first; anything else: try again next round.
            if err.status != 409:
                log.warning("leader election: %s", err)
            return False
        except (httpx.HTTPError, OSError) as err:  # unreachable, slow, or out of time
            log.warning("leader election: %s", err or type(err).__name__)
            return False

    def _held(self, *, transitions: int, acquired: bool) -> dict[str, Any]:
        now = _now_micro()
        spec: dict[str, Any] = {"holderIdentity": self.identity,
                                "leaseDurationSeconds": max(1, round(self.timing.lease_duration)),
                                "renewTime": now, "leaseTransitions": transitions}
        metadata: dict[str, Any] = {"name": self.name}
        if self._lease:
            metadata["resourceVersion"] = self._lease["metadata"]["resourceVersion"]
            spec["acquireTime"] = self._lease["spec"].get("acquireTime")
        if acquired or not spec.get("acquireTime"):
            spec["acquireTime"] = now
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata, "spec": spec}

    def _pause(self, stop: threading.Event) -> None:
        # Jitter keeps standbys from polling in lock-step.
        stop.wait(self.timing.retry_period * random.uniform(1.0, 1.2))

    def acquire(self, stop: threading.Event) -> bool:
        """Stands by until the Lease is ours (True) or `stop` is set (False)."""
        announced = False
        while not stop.is_set():
            if self.try_acquire_or_renew():
                return True
            if not announced and self._seen and self._seen.record:
                log.info("standing by: the Lease %s is held by %s", self.name, self._seen.record.holder)
                announced = True
            self._pause(stop)
        return False

    def keep(self, stop: threading.Event, on_lost: Callable[[], None]) -> None:
        """Renews until `stop` is set; calls `on_lost` once no renewal has succeeded within the
        renew deadline (someone else may take over soon: the caller must stop acting). Every
        call is bounded by that deadline, so a hung API server cannot stretch it."""
        renewed = self.clock()
        while not stop.is_set():
            self._pause(stop)
            if stop.is_set():
                return
            if self.try_acquire_or_renew(until=renewed + self.timing.renew_deadline):
                renewed = self.clock()
            elif not still_leading(renewed, self.clock(), self.timing):
                log.error("lost the Lease %s: not renewed within %gs", self.name, self.timing.renew_deadline)
                on_lost()
                return

    def release(self) -> None:
        """Hands the Lease back (no holder, one-second duration) if we still hold it."""
        try:
            lease = self.kube.get_or_none(self.path)
            if not lease or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            spec = {**lease["spec"], "holderIdentity": None, "leaseDurationSeconds": 1, "renewTime": _now_micro()}
            self.kube.put(self.path, {**lease, "spec": spec})
            log.info("released the Lease %s", self.name)
        except (KubeError, httpx.HTTPError, OSError) as err:
            log.warning("could not release the Lease %s (a standby takes over when it expires): %s",
                        self.name, err)
