"""Rotating a set of shared secrets with a primary: the gossip keyring and the API tokens.

Both live in a Secret as one entry a line, the first being the primary (the key that
seals gossip, the token clients send), and the nodes accept every line and re-read the
file live. A rotation is three edits, each confirmed by every member from what it reports
it has loaded (ids only, never the material):

1. Adding: [old, new]: every node opens with (accepts) both; the old one stays primary.
2. Promoting: [new, old]: every node seals with (clients send) the new one. For tokens the
   old one is dropped only once no node has seen it for `quiet` (every client switched).
3. Dropping: [new]: every node has forgotten the old one.

The Secret carries the id of the entry being rotated to (`target`) and the request it
serves, written together with the entries, so the phase is read from the Secret and a
restarted operator neither starts a second rotation nor loses the one under way.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

READY, ADDING, PROMOTING, DROPPING = "Ready", "Adding", "Promoting", "Dropping"
ROTATING = (ADDING, PROMOTING, DROPPING)


@dataclass(frozen=True)
class RingWorld:
    what: str  # "gossip key" or "API token": used in messages
    label: str  # "GossipKey" or "ApiToken": the stem of Event reasons
    now: dt.datetime
    pods: tuple[str, ...]
    entries: tuple[str, ...]  # ids in the Secret, primary first
    target: str  # id being rotated to ("" when none was ever rotated)
    request: str  # the annotation asking for a rotation
    served_request: str  # the request the Secret's target was made for
    loaded: dict[str, tuple[str, ...]]  # pod -> ids it reports, primary first (absent: no answer)
    confirm_timeout: dt.timedelta
    previous: dict[str, Any] = field(default_factory=dict)
    # pod -> seconds since the node last saw the old primary used (None: never); tokens only
    old_last_used: dict[str, float | None] | None = None
    quiet: float = 0.0


@dataclass
class RingPlan:
    phase: str
    start: str = ""  # make a new entry and write [current, new] for this request
    write: tuple[str, ...] | None = None  # write the entries in this order
    waiting_for: tuple[str, ...] = ()
    held: bool = False
    message: str = ""
    events: list[tuple[str, str, str]] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)


def plan(world: RingWorld) -> RingPlan:
    entries, target = world.entries, world.target
    unconfirmed = tuple(p for p in world.pods if world.loaded.get(p) != entries)
    what = world.what
    if len(entries) > 1 and target in entries and entries[0] != target:
        result = RingPlan(ADDING, waiting_for=unconfirmed,
                          message=f"step 1/3: waiting for {', '.join(unconfirmed)} to accept the new {what} "
                                  f"{target}") if unconfirmed else \
            RingPlan(PROMOTING, write=(target, *(e for e in entries if e != target)), waiting_for=world.pods,
                     message=f"step 2/3: every node accepts {target}; making it the primary {what}")
    elif len(entries) > 1 and entries[0] == target:
        busy = _still_used(world)
        if unconfirmed:
            result = RingPlan(PROMOTING, waiting_for=unconfirmed,
                              message=f"step 2/3: waiting for {', '.join(unconfirmed)} to use {target} as the "
                                      f"primary {what}")
        elif busy:
            result = RingPlan(PROMOTING, waiting_for=busy,
                              message=f"step 2/3: a client still sent the old {what} to {', '.join(busy)} in the "
                                      f"last {world.quiet:g}s; it is dropped once nobody has for that long")
        else:
            result = RingPlan(DROPPING, write=(target,), waiting_for=world.pods,
                              message=f"step 3/3: every node uses {target}; dropping the old {what}")
    elif world.previous.get("phase") == DROPPING and unconfirmed:
        result = RingPlan(DROPPING, waiting_for=unconfirmed,
                          message=f"step 3/3: waiting for {', '.join(unconfirmed)} to drop the old {what}")
    elif world.request and world.request != world.served_request and len(entries) == 1:
        result = RingPlan(ADDING, start=world.request, waiting_for=world.pods,
                          message=f"step 1/3: adding a new {what} next to {entries[0]} (request {world.request})")
    else:
        result = RingPlan(READY, message=f"every node uses the {what} {entries[0] if entries else '?'}"
                          if not unconfirmed else f"waiting for {', '.join(unconfirmed)} to load the {what}",
                          waiting_for=unconfirmed if world.loaded else ())
    return _finish(world, result)


def _still_used(world: RingWorld) -> tuple[str, ...]:
    if world.old_last_used is None:
        return ()
    return tuple(p for p in world.pods if (ago := world.old_last_used.get(p)) is not None and ago < world.quiet)


def _finish(world: RingWorld, result: RingPlan) -> RingPlan:
    previous = world.previous
    now = f"{world.now:%Y-%m-%dT%H:%M:%SZ}"
    was = previous.get("phase")
    since = str(previous.get("phaseSince") or now) if was == result.phase else now
    waited = world.now - dt.datetime.strptime(since, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    if result.phase in ROTATING and result.waiting_for and result.write is None and not result.start \
            and waited > world.confirm_timeout:
        result.held = True
        result.message = (f"held: {', '.join(result.waiting_for)} did not confirm within {world.confirm_timeout} "
                          f"({result.message}); the rotation waits for every member")
    result.status = {
        "phase": result.phase, "phaseSince": since, "primary": world.entries[0] if world.entries else "",
        "ids": list(world.entries), "target": world.target, "waitingFor": list(result.waiting_for),
        "held": result.held, "message": result.message,
        "members": [{"name": p, "ids": list(world.loaded.get(p, ())), "confirmed": world.loaded.get(p) == world.entries}
                    for p in world.pods],
    }
    label = world.label
    if result.phase != was and was is not None:
        reason = f"{label}Rotated" if result.phase == READY and was in ROTATING else f"{label}Rotation{result.phase}"
        result.events.append(("Normal", reason, result.message))
    if result.held and not previous.get("held"):
        result.events.append(("Warning", f"{label}RotationHeld", result.message))
    return result
