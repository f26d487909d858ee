"""Signal kinds: what a series counts, in which unit, at which native step, which way is bad.

Known names carry the IODA-derived settings (anchors §1.2); any other name is accepted
and gets generic defaults, so imported series from other tools need no registration.

Every known signal states its :class:`Direction` explicitly (issue 7: ``probing-latency-p90``
was unknown, fell into the generic family, and a *drop* of latency raised a critical outage).
Level-drop detectors such as ``ioda.median`` judge only ``higher-is-better`` counts, as IODA
alerts only on counts (bgp, ping-slash24, merit-nt) and never on loss or latency; a rise of
loss or latency is a degradation for future detectors, a fall never is; a state code is
neither. ``tests/test_model.py`` checks that every signal name a source or the pipeline
writes is known here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class SourceFamily(StrEnum):
    BGP = "bgp"
    PROBING = "probing"
    TELESCOPE = "telescope"
    PLATFORM = "platform"
    #: service-level speed (``throttling:<p>``, ``tls-handshake:<p>``): a platform that is
    #: reachable but slow. Not PLATFORM: a slowdown is no block (kind ``throttling``, never
    #: ``platform-block``, docs/ooni.md "Throttling").
    THROTTLING = "throttling"
    TRAFFIC = "traffic"
    GENERIC = "generic"


class Direction(StrEnum):
    """Which way a signal moves when something is wrong."""

    #: Counts (visible /24s, up blocks, % tests reachable): a fall is the outage signature.
    HIGHER_IS_BETTER = "higher-is-better"
    #: Loss and latency: a rise means trouble; a fall is good news and never an outage.
    HIGHER_IS_WORSE = "higher-is-worse"
    #: Codes, not amounts (block state 1 up / 0 down / -1 uncertain): never judged as a level.
    STATE = "state"


@dataclass(frozen=True)
class SignalKind:
    name: str
    unit: str
    native_step: int
    family: SourceFamily
    description: str = ""
    #: Required, so no signal gets a direction by omission.
    direction: Direction = field(kw_only=True)

    @property
    def higher_is_better(self) -> bool:
        """True only for counts whose fall means trouble (the only signals level-drop
        detectors judge); False for higher-is-worse signals and for state codes."""
        return self.direction is Direction.HIGHER_IS_BETTER

    @property
    def judged(self) -> bool:
        """False for state codes, which no detector reads as a level."""
        return self.direction is not Direction.STATE


_UP = Direction.HIGHER_IS_BETTER
_WORSE = Direction.HIGHER_IS_WORSE

KNOWN_SIGNALS: dict[str, SignalKind] = {
    s.name: s
    for s in (
        SignalKind("bgp", "visible /24s", 300, SourceFamily.BGP,
                   "IPv4 /24s covered by routes seen by >50% of full-feed peers", direction=_UP),
        SignalKind("bgp-v6", "visible /48s", 300, SourceFamily.BGP,
                   "IPv6 /48s covered by routes seen by >50% of full-feed peers", direction=_UP),
        SignalKind("probing", "up /24s", 600, SourceFamily.PROBING,
                   "/24 blocks believed up by Trinocular-style active probing", direction=_UP),
        SignalKind("probing-loss", "% probes lost", 600, SourceFamily.PROBING,
                   "share of probes without reply", direction=_WORSE),
        SignalKind("probing-latency", "ms", 600, SourceFamily.PROBING,
                   "median probe round-trip time", direction=_WORSE),
        SignalKind("probing-latency-p90", "ms", 600, SourceFamily.PROBING,
                   "90th percentile probe round-trip time", direction=_WORSE),
        SignalKind("probing-state", "state code", 600, SourceFamily.PROBING,
                   "Trinocular block state per /24: 1 up, 0 down, -1 uncertain",
                   direction=Direction.STATE),
        SignalKind("telescope", "unique source IPs", 300, SourceFamily.TELESCOPE,
                   "darknet background radiation sources (IODA merit-nt)", direction=_UP),
        SignalKind("merit-nt", "unique source IPs", 300, SourceFamily.TELESCOPE,
                   "IODA's name for the telescope signal", direction=_UP),
        SignalKind("ping-slash24", "up /24s", 600, SourceFamily.PROBING,
                   "IODA's name for the active-probing signal", direction=_UP),
        SignalKind("gtr", "traffic", 1800, SourceFamily.TRAFFIC,
                   "Google Transparency Report traffic", direction=_UP),
        SignalKind("ooni-volume", "measurements", 3600, SourceFamily.TRAFFIC,
                   "OONI measurements of every test per hour (0 = none: a collapse)",
                   direction=_UP),
        SignalKind("tor-users", "users", 86400, SourceFamily.TRAFFIC,
                   "Tor Metrics relay users (a surge: blocking; a collapse: shutdown)",
                   direction=_UP),
        SignalKind("tor-bridge-users", "users", 86400, SourceFamily.TRAFFIC,
                   "Tor Metrics bridge users (a surge: blocking; a collapse: shutdown)",
                   direction=_UP),
    )
}

PLATFORM_PREFIX = "platform:"
THROTTLING_PREFIX = "throttling:"


def signal_kind(name: str) -> SignalKind:
    """Settings for a signal name; ``platform:<name>`` and unknown names get defaults.

    Unknown names are taken as counts (higher is better), IODA's assumption for its signals.
    """
    if name in KNOWN_SIGNALS:
        return KNOWN_SIGNALS[name]
    if name.startswith(PLATFORM_PREFIX):
        return SignalKind(name, "% tests reachable", 3600, SourceFamily.PLATFORM,
                          f"share of {name[len(PLATFORM_PREFIX):]} tests that reached the service",
                          direction=_UP)
    if name.startswith("platform-blocked:"):  # platform-blocked:<platform>:<mechanism>
        return SignalKind(name, "blocked tests", 3600, SourceFamily.PLATFORM,
                          "OONI tests blocked by one mechanism", direction=_WORSE)
    if name.startswith("tls-handshake:"):  # tls-handshake:<platform>
        return SignalKind(name, "ms", 3600, SourceFamily.THROTTLING,
                          "median TLS handshake time (throttling)", direction=_WORSE)
    if name.startswith(THROTTLING_PREFIX):  # throttling:<platform>
        # target/control speed on the same server address in % (100 = same speed): a fall
        # is the SNI-throttling signature, so the level-drop detectors judge it like a count
        return SignalKind(name, "% of control speed", 3600, SourceFamily.THROTTLING,
                          f"{name[len(THROTTLING_PREFIX):]} speed beside a same-server "
                          "control SNI (100 = unthrottled)", direction=_UP)
    return SignalKind(name, "value", 300, SourceFamily.GENERIC, "imported series", direction=_UP)
