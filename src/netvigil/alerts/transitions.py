"""Transitions: the moments an event opens and ends, each with a stable id.

Why transitions, not events: a subscriber wants one message when an outage starts and one
when it ends, not one per detection pass; re-detecting the same store gives the same event
ids (``events.build.event_id``: entity, start, kind), hence the same transition ids, which the
outbox keys on, so nothing is sent twice. An event whose start is revised by late data gets a
new id and is announced again, as a revision (the old one's close is still reported if seen).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from netvigil.model.events import Event


@dataclass(frozen=True)
class Transition:
    id: str  # "<event id>:opened" | "<event id>:ended"
    what: str  # "opened" | "ended"
    at: int  # unix seconds, data time of the transition
    event: Event


def transitions_of(events: Iterable[Event], *, since: int | None = None) -> list[Transition]:
    """Every transition of ``events`` at or after ``since``, in time order."""
    out = []
    for ev in events:
        out.append(Transition(f"{ev.id}:opened", "opened", ev.start, ev))
        if ev.end is not None:
            out.append(Transition(f"{ev.id}:ended", "ended", ev.end, ev))
    if since is not None:
        out = [t for t in out if t.at >= since]
    return sorted(out, key=lambda t: (t.at, t.id))
