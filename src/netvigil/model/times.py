"""The one ISO 8601 formatter: unix seconds → ``2022-01-05T10:40:00Z`` (UTC, ``Z`` suffix).

Every surface (events JSON/CSV, CODF, reports, probe JSONL, logs) formats times here so one
instant is spelled one way everywhere.
"""

from __future__ import annotations

from datetime import UTC, datetime


def iso_utc(ts: float | None, *, millis: bool = False) -> str | None:
    """``None`` stays ``None`` (an ongoing event has no end); ``millis`` keeps milliseconds."""
    if ts is None:
        return None
    d = datetime.fromtimestamp(ts, tz=UTC)
    if millis:
        return d.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return d.strftime("%Y-%m-%dT%H:%M:%SZ")
