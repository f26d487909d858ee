"""Signal kinds: what a series counts, in which unit, at which native step.

Known names carry the IODA-derived settings (anchors §1.2); any other name is accepted
and gets generic defaults, so imported series from other tools need no registration.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class SourceFamily(StrEnum):
    BGP = "bgp"
    PROBING = "probing"
    TELESCOPE = "telescope"
    PLATFORM = "platform"
    TRAFFIC = "traffic"
    GENERIC = "generic"


@dataclass(frozen=True)
class SignalKind:
    name: str
    unit: str
    native_step: int
    family: SourceFamily
    description: str = ""
    #: False for signals whose rise, not fall, means trouble (loss, latency).
    higher_is_better: bool = True


KNOWN_SIGNALS: dict[str, SignalKind] = {
    s.name: s
    for s in (
        SignalKind("bgp", "visible /24s", 300, SourceFamily.BGP,
                   "IPv4 /24s covered by routes seen by >50% of full-feed peers"),
        SignalKind("bgp-v6", "visible /48s", 300, SourceFamily.BGP,
                   "IPv6 /48s covered by routes seen by >50% of full-feed peers"),
        SignalKind("probing", "up /24s", 600, SourceFamily.PROBING,
                   "/24 blocks believed up by Trinocular-style active probing"),
        SignalKind("probing-loss", "% probes lost", 600, SourceFamily.PROBING,
                   "share of probes without reply", higher_is_better=False),
        SignalKind("probing-latency", "ms", 600, SourceFamily.PROBING,
                   "median probe round-trip time", higher_is_better=False),
        SignalKind("telescope", "unique source IPs", 300, SourceFamily.TELESCOPE,
                   "darknet background radiation sources (IODA merit-nt)"),
        SignalKind("merit-nt", "unique source IPs", 300, SourceFamily.TELESCOPE,
                   "IODA's name for the telescope signal"),
        SignalKind("ping-slash24", "up /24s", 600, SourceFamily.PROBING,
                   "IODA's name for the active-probing signal"),
        SignalKind("gtr", "traffic", 1800, SourceFamily.TRAFFIC,
                   "Google Transparency Report traffic"),
    )
}

PLATFORM_PREFIX = "platform:"


def signal_kind(name: str) -> SignalKind:
    """Settings for a signal name; ``platform:<name>`` and unknown names get defaults."""
    if name in KNOWN_SIGNALS:
        return KNOWN_SIGNALS[name]
    if name.startswith(PLATFORM_PREFIX):
        return SignalKind(name, "% tests reachable", 3600, SourceFamily.PLATFORM,
                          f"share of {name[len(PLATFORM_PREFIX):]} tests that reached the service")
    return SignalKind(name, "value", 300, SourceFamily.GENERIC, "imported series")
