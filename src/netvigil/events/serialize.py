"""Events as plain JSON/CSV records (times ISO 8601 UTC, ``end`` null while ongoing)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from netvigil.model import Event, SignalEvidence
from netvigil.model.times import iso_utc

FLAT_FIELDS = ("id", "entity_type", "entity_code", "entity_name", "start", "end", "duration",
               "status", "scope", "kind", "score", "confidence", "min_ratio", "signals",
               "rules")


def share_lost(event: Event) -> float | None:
    """The severity people read: the share of ordinary connectivity lost (the assessment's
    ``severity.share_lost``, else ``1 - min_ratio``), shown in tables instead of IODA's raw
    score product (values like 1.7e17 mean nothing to a reader); None when unknown."""
    sev = event.assessment.get("severity") if event.assessment else None
    if isinstance(sev, dict) and isinstance(sev.get("share_lost"), int | float):
        return float(sev["share_lost"])
    if event.min_ratio != event.min_ratio:
        return None
    return min(1.0, max(0.0, 1.0 - event.min_ratio))


def evidence_to_dict(ev: SignalEvidence) -> dict[str, Any]:
    return {
        "signal": ev.signal,
        "method": ev.method,
        "start": iso_utc(ev.start),
        "end": iso_utc(ev.end),
        "score": ev.score,
        "min_ratio": ev.min_ratio,
        "min_value": ev.min_value,
        "history_value": ev.history_value,
        "worst_level": ev.worst_level,
    }


def event_to_dict(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "entity_type": event.entity.type.value,
        "entity_code": event.entity.code,
        "entity_name": event.entity_name,
        "start": iso_utc(event.start),
        "end": iso_utc(event.end),
        "duration": event.duration,
        "status": event.status.value,
        "scope": event.scope.value,
        "kind": event.kind.value,
        "score": event.score,
        "confidence": event.confidence,
        "min_ratio": event.min_ratio,
        "signals": [evidence_to_dict(s) for s in event.signals],
        "rules": list(event.rules),
        "assessment": dict(event.assessment),
    }


def events_to_csv(events: Sequence[Event]) -> str:
    """CSV with the flat fields; ``signals`` and ``rules`` joined with ``;``."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(FLAT_FIELDS)
    for event in events:
        row = event_to_dict(event)
        row["signals"] = ";".join(s.signal for s in event.signals)
        row["rules"] = ";".join(event.rules)
        writer.writerow(["" if row[f] is None else row[f] for f in FLAT_FIELDS])
    return buf.getvalue()
