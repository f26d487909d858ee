"""A severity a person can read, in place of IODA's raw score product (``1.7e+17``).

Issue 10 asks that people never be shown the cross-signal score product; they are shown how
far connectivity fell, as NetBlocks reports it ("N% of ordinary levels", anchors §3.3). The
ratio is the event's primary connectivity evidence's lowest value/baseline
(:func:`netvigil.reports.netblocks.primary_evidence`, the same one the report sentences use).
Platform-only events have no connectivity ratio and read as a platform block.

Thresholds are data with stable ids (:data:`SEVERITY_RULES`), checked top to bottom; the
labels are NetBlocks' vocabulary ("near-total", "major", "partial").
"""

from __future__ import annotations

from dataclasses import dataclass

from netvigil.model import Event, EventKind
from netvigil.reports.netblocks import primary_evidence


@dataclass(frozen=True)
class SeverityRule:
    id: str
    rank: int  # higher is worse; sorts the summary
    label: str
    below: float  # connectivity ratio strictly below this (1.0 = ordinary)


#: Connectivity at < 10% of ordinary is a near-total blackout (NetBlocks' Kazakhstan 2022
#: wording at ~2%), < 50% a major disruption, < 90% partial; a drop that stays above 90% is
#: minor. Platform blocks are ranked between partial and major: services gone, access kept.
SEVERITY_RULES: tuple[SeverityRule, ...] = (
    SeverityRule("severity.near-total", 5, "near-total blackout", 0.10),
    SeverityRule("severity.major", 4, "major disruption", 0.50),
    SeverityRule("severity.partial", 2, "partial disruption", 0.90),
    SeverityRule("severity.minor", 1, "minor disruption", float("inf")),
)
PLATFORM_BLOCK = SeverityRule("severity.platform-block", 3, "platform blocking", float("nan"))
NO_EVENT = SeverityRule("severity.none", 0, "no disruption", float("nan"))


def connectivity_ratio(event: Event) -> float | None:
    """The lowest value / ordinary level of the event's connectivity evidence, or None."""
    ev = primary_evidence(event)
    if ev is None or ev.min_ratio != ev.min_ratio:
        return None
    return max(0.0, ev.min_ratio)


def severity_of(event: Event) -> SeverityRule:
    ratio = connectivity_ratio(event)
    if ratio is None:
        return PLATFORM_BLOCK if event.kind is EventKind.PLATFORM_BLOCK else SEVERITY_RULES[-1]
    return next(r for r in SEVERITY_RULES if ratio < r.below)


def worst(events: list[Event]) -> tuple[SeverityRule, Event | None]:
    """The most severe event (ties: the lower connectivity, then the earlier start)."""
    best: tuple[SeverityRule, Event | None] = (NO_EVENT, None)
    for e in events:
        rule = severity_of(e)
        ratio = connectivity_ratio(e)
        key = (rule.rank, -(ratio if ratio is not None else 1.0), -e.start)
        cur = best[1]
        cur_ratio = connectivity_ratio(cur) if cur is not None else None
        cur_key = (best[0].rank, -(cur_ratio if cur_ratio is not None else 1.0),
                   -(cur.start if cur is not None else 0))
        if cur is None or key > cur_key:
            best = (rule, e)
    return best
