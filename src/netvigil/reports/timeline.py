"""The event timeline as a plain fixed-width table (CLI and report folder print the same)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from netvigil.events.serialize import share_lost
from netvigil.model import Event

# "lost %" is the readable severity (events.serialize.share_lost), not IODA's score product
HEADERS = ("start (UTC)", "end (UTC)", "entity", "scope", "kind", "min %", "lost %",
           "signals")


#: A display format for people (minutes, no ``T``/``Z``), not a data format: files and JSON
#: spell instants with ``netvigil.model.times.iso_utc``.
DISPLAY_TIME_FORMAT = "%Y-%m-%d %H:%M"


def _t(ts: int | None) -> str:
    if ts is None:
        return "ongoing"
    return datetime.fromtimestamp(ts, tz=UTC).strftime(DISPLAY_TIME_FORMAT)


def rows(events: Sequence[Event]) -> list[list[str]]:
    out: list[list[str]] = []
    for e in events:
        name = e.entity_name or e.entity.code
        label = f"{name} ({e.entity.fqid})"
        pct = "" if e.min_ratio != e.min_ratio else f"{e.min_ratio * 100:.1f}"
        lost = share_lost(e)
        out.append([_t(e.start), _t(e.end), label, e.scope.value, e.kind.value, pct,
                    "" if lost is None else f"{lost * 100:.0f}",
                    ",".join(s.signal for s in e.signals)])
    return out


def render_table(events: Sequence[Event]) -> str:
    cells = rows(events)
    widths = [len(h) for h in HEADERS]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    lines = ["  ".join(h.ljust(widths[i]) for i, h in enumerate(HEADERS)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in cells]
    return "\n".join(lines)
