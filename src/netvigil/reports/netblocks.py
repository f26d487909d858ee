"""One NetBlocks-style sentence per event: "National connectivity in X fell to N% of ordinary
levels at HH:MM UTC on D Month".

Why this phrasing: NetBlocks' headline metric, "national connectivity at N% of ordinary
levels" (anchors §3.3), is how journalists quote shutdowns (Kazakhstan 2022: ~2%). N is the
event's lowest value/baseline on its connectivity evidence (IODA's value/history ratio,
§1.3), the time is the detected start (a bin start), not a time read from the news.

An event may carry evidence from several families (IODA merges overlapping events of one
entity, §1.6). The main clause speaks for the data-plane evidence; blocked platforms get their
own clause, so a merged event never reports the platform block's start as the blackout's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from netvigil.model import Event, EventKind, Scope, SignalEvidence, SourceFamily, signal_kind

PLATFORM_NAMES = {
    "whatsapp": "WhatsApp", "telegram": "Telegram", "signal": "Signal",
    "facebook_messenger": "Facebook Messenger", "facebook": "Facebook", "twitter": "Twitter",
    "instagram": "Instagram", "youtube": "YouTube", "tiktok": "TikTok",
}
# Which connectivity evidence speaks for an event, best first: the data plane before BGP.
_PRIMARY = (SourceFamily.PROBING, SourceFamily.TELESCOPE, SourceFamily.TRAFFIC,
            SourceFamily.GENERIC, SourceFamily.BGP)


def when(ts: int) -> str:
    """``10:40 UTC on 5 January``."""
    d = datetime.fromtimestamp(ts, tz=UTC)
    return f"{d:%H:%M} UTC on {d.day} {d:%B}"


def percent(ratio: float) -> str:
    """A ratio as NetBlocks writes it: whole percent, 'under 1%' near zero."""
    if ratio != ratio:  # NaN
        return "an unknown share"
    pct = ratio * 100.0
    if pct < 1.0:
        return "under 1%"
    return f"{pct:.0f}%"


def platform_name(signal: str) -> str:
    raw = signal.split(":", 1)[1] if ":" in signal else signal
    return PLATFORM_NAMES.get(raw.lower(), raw.replace("_", " ").title())


def _join(names: Sequence[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def _where(event: Event) -> str:
    name = event.entity_name or event.entity.code
    if event.scope is Scope.NETWORK:
        return f"on {name} (AS{event.entity.code})"
    return f"in {name}"


def _subject(event: Event) -> str:
    name = event.entity_name or event.entity.code
    if event.scope is Scope.NATIONAL:
        return f"National connectivity in {name}"
    if event.scope is Scope.NETWORK:
        return f"Connectivity on {name} (AS{event.entity.code})"
    return f"Connectivity in {name}"


def _family(ev: SignalEvidence) -> SourceFamily:
    return signal_kind(ev.signal).family


def primary_evidence(event: Event) -> SignalEvidence | None:
    """The connectivity evidence that speaks for the event (None for platform-only events)."""
    conn = [e for e in event.signals if _family(e) is not SourceFamily.PLATFORM
            and signal_kind(e.signal).higher_is_better]
    for fam in _PRIMARY:
        found = [e for e in conn if _family(e) is fam]
        if found:
            return min(found, key=lambda e: (e.start, e.min_ratio))
    return conn[0] if conn else None


def sentence(event: Event, *, reconstruction: bool = False) -> str:
    """The sentence for one event (see module docstring)."""
    platforms = sorted((e for e in event.signals if _family(e) is SourceFamily.PLATFORM),
                       key=lambda e: (e.start, e.signal))
    main = primary_evidence(event)
    tail = " (reconstruction)" if reconstruction else ""
    plat_names = _join([platform_name(e.signal) for e in platforms])
    if main is None or event.kind is EventKind.PLATFORM_BLOCK:
        if not platforms:
            demand = (event.assessment or {}).get("circumvention", {}).get("summary")
            if demand:  # a Tor surge alone (classification.demand_events)
                return f"{demand}{tail}."
            return f"{_subject(event)} was disrupted from {when(event.start)}{tail}."
        worst = min(e.min_ratio for e in platforms)
        return (f"{plat_names} became unreachable {_where(event)} at "
                f"{when(min(e.start for e in platforms))}, with {percent(worst)} of tests "
                f"reaching {'it' if len(platforms) == 1 else 'them'}{tail}.")
    if event.kind is EventKind.ROUTING:
        text = (f"Routes to networks {_where(event)} were withdrawn: BGP "
                f"visibility fell to {percent(main.min_ratio)} of ordinary levels at "
                f"{when(main.start)}")
    elif event.kind is EventKind.DEGRADATION:
        text = (f"{_subject(event)} degraded ({main.signal} at {percent(main.min_ratio)} of "
                f"ordinary) from {when(main.start)}")
    else:
        text = (f"{_subject(event)} fell to {percent(main.min_ratio)} of ordinary levels at "
                f"{when(main.start)}")
    if main.end is not None:
        text += f", recovering at {when(main.end)}"
    if platforms:
        first = min(e.start for e in platforms)
        rel = "after" if first < main.start else "while"
        text += f"; {rel} {plat_names} became unreachable from {when(first)}"
    return text + tail + "."


def sentences(events: Sequence[Event], *, reconstruction: bool = False) -> list[str]:
    return [sentence(e, reconstruction=reconstruction) for e in events]
