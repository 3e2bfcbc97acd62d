"""The rules of leader election, as pure functions of what a candidate has seen of the Lease.

They follow client-go's leaderelection: a Lease held by another is taken over only once it has
not changed for its lease duration *by the candidate's own clock* (the time it saw the record
change), never by comparing the holder's `renewTime` with ours, so clock skew between machines
cannot hand the Lease to two. A leader that has not renewed within the renew deadline stops
acting; the deadline is shorter than the lease duration, so it has stopped before anyone may
take over.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Timing:
    """Seconds. client-go's defaults: a standby takes over within about `lease_duration` of the
    leader's last renewal."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                f"leader election needs retry period < renew deadline < lease duration, got "
                f"{self.retry_period:g}s, {self.renew_deadline:g}s, {self.lease_duration:g}s: a leader must "
                "give up before its Lease can be taken over, and retry more than once before that")


@dataclass(frozen=True)
class Record:
    """The parts of a Lease election reads; `version` is its resourceVersion."""

    holder: str
    lease_duration: float
    transitions: int
    version: str

    @classmethod
    def of(cls, lease: dict[str, Any]) -> Record:
        spec = lease.get("spec") or {}
        return cls(holder=spec.get("holderIdentity") or "", lease_duration=float(spec.get("leaseDurationSeconds") or 0),
                   transitions=int(spec.get("leaseTransitions") or 0),
                   version=str(lease["metadata"].get("resourceVersion", "")))


@dataclass(frozen=True)
class Observation:
    """The Lease as a candidate last saw it, and when (its monotonic clock) it last changed."""

    record: Record | None
    changed_at: float


def observe(previous: Observation | None, record: Record | None, now: float) -> Observation:
    """The new observation after reading `record` at `now`: the change time moves only when the
    record did (a renewal changes its resourceVersion)."""
    if previous is not None and previous.record == record:
        return previous
    return Observation(record, now)


class Step(enum.Enum):
    CREATE = "create"  # no Lease yet: create it, held by us
    TAKE = "take"  # released or expired: take it over (one more transition)
    RENEW = "renew"  # ours: renew it
    WAIT = "wait"  # another's, still live: stand by


def next_step(seen: Observation, me: str, now: float) -> Step:
    record = seen.record
    if record is None:
        return Step.CREATE
    if record.holder == me:
        return Step.RENEW
    if not record.holder or now >= seen.changed_at + record.lease_duration:
        return Step.TAKE
    return Step.WAIT


def still_leading(last_renewed: float, now: float, timing: Timing) -> bool:
    """A leader that has not renewed within the renew deadline must stop acting."""
    return now - last_renewed < timing.renew_deadline
