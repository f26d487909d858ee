"""CODF records (ISI TR-729 "Common Outage Data Format") as ioda-api emits them.

ioda-api ``OutagesEventsService`` with ``format=codf`` writes one object per event:
``{location:"country/KZ", start, duration, uncertainty:null, method, datasource, status:0,
fraction:null, score, location_name, overlaps_window}``. NetVigil fills them from a merged
event: ``method`` and ``datasource`` join the detector ids and signal names with ``+``
(IODA's per-source records are available via :func:`to_codf_per_signal`). ``duration`` of an
ongoing event runs to ``until`` (the query window end), or is null without one;
``overlaps_window`` is true when the event is still open at ``until`` (or ongoing).
"""

from __future__ import annotations

from typing import Any

from netvigil.model import Event

CODF_KEYS = ("location", "start", "duration", "uncertainty", "method", "datasource",
             "status", "fraction", "score", "location_name", "overlaps_window")


def _duration(start: int, end: int | None, until: int | None) -> int | None:
    stop = end if end is not None else until
    return None if stop is None else max(0, stop - start)


def _overlaps(end: int | None, until: int | None) -> bool:
    return end is None or (until is not None and end > until)


def to_codf(event: Event, *, until: int | None = None) -> dict[str, Any]:
    """One CODF object for a (merged) event."""
    return {
        "location": event.entity.fqid,
        "start": event.start,
        "duration": _duration(event.start, event.end, until),
        "uncertainty": None,
        "method": "+".join(sorted({s.method for s in event.signals})),
        "datasource": "+".join(s.signal for s in event.signals),
        "status": 0,
        "fraction": None,
        "score": event.score,
        "location_name": event.entity_name,
        "overlaps_window": _overlaps(event.end, until),
    }


def to_codf_per_signal(event: Event, *, until: int | None = None) -> list[dict[str, Any]]:
    """One CODF object per signal of the event, as IODA lists per-datasource events."""
    return [
        {
            "location": event.entity.fqid,
            "start": s.start,
            "duration": _duration(s.start, s.end, until),
            "uncertainty": None,
            "method": s.method,
            "datasource": s.signal,
            "status": 0,
            "fraction": None,
            "score": s.score,
            "location_name": event.entity_name,
            "overlaps_window": _overlaps(s.end, until),
        }
        for s in event.signals
    ]
