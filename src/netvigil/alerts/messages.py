"""What an alert says: one payload per transition, the same facts for every channel.

The payload is the event as ``netvigil events --format json`` writes it (one serializer), plus
the transition and a readable line in NetBlocks' words (share of ordinary levels, not IODA's
raw score product), so a webhook consumer, a mail reader and a feed reader see one story.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from netvigil.alerts.transitions import Transition
from netvigil.events.serialize import event_to_dict
from netvigil.model.events import EventKind
from netvigil.model.times import iso_utc


def _when(ts: int) -> str:
    d = datetime.fromtimestamp(ts, UTC)
    return f"{d:%H:%M} UTC on {d.day} {d:%B %Y}"


def headline(t: Transition) -> str:
    ev = t.event
    name = ev.entity_name or ev.entity.code
    what = {EventKind.PLATFORM_BLOCK: "platform blocking", EventKind.ROUTING: "routing outage",
            EventKind.DEGRADATION: "degradation"}.get(ev.kind, "connectivity outage")
    scope = f"{ev.scope.value} " if ev.kind is not EventKind.PLATFORM_BLOCK else ""
    if t.what == "opened":
        level = ev.min_ratio * 100
        return (f"{name}: {scope}{what} from {_when(t.at)} "
                f"(lowest so far {level:.0f}% of ordinary levels)")
    return f"{name}: {scope}{what} ended at {_when(t.at)}"


def payload(t: Transition, subscriptions: list[str]) -> dict[str, Any]:
    return {
        "delivery_id": t.id,
        "transition": t.what,
        "at": iso_utc(t.at),
        "headline": headline(t),
        "subscriptions": subscriptions,
        "event": event_to_dict(t.event),
    }
