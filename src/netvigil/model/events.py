"""Events: explained outages with scope, kind, severity, confidence and evidence.

An event is a judgement (tier 3): it names the detector and rule ids that decided it, and
carries the per-signal evidence so a reader can check the claim against the series.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from netvigil.model.entities import EntityRef, EntityType


class Scope(StrEnum):
    NATIONAL = "national"
    REGIONAL = "regional"
    NETWORK = "network"

    @classmethod
    def for_entity(cls, ref: EntityRef) -> Scope:
        if ref.type is EntityType.COUNTRY:
            return cls.NATIONAL
        if ref.type is EntityType.REGION:
            return cls.REGIONAL
        return cls.NETWORK


class EventStatus(StrEnum):
    ONGOING = "ongoing"
    ENDED = "ended"


class EventKind(StrEnum):
    OUTAGE = "outage"  # data-plane connectivity drop (probing/telescope/traffic)
    ROUTING = "routing"  # control-plane: routes withdrawn (BGP falls)
    PLATFORM_BLOCK = "platform-block"  # specific services unreachable, connectivity intact
    DEGRADATION = "degradation"  # loss/latency up, counts intact


@dataclass(frozen=True)
class SignalEvidence:
    signal: str
    method: str  # detector id
    start: int
    end: int | None
    score: float  # IODA alert-area score for this signal
    min_ratio: float  # lowest value / baseline
    min_value: float
    history_value: float  # baseline at the deepest point
    worst_level: str  # "warning" | "critical"


@dataclass(frozen=True)
class Event:
    id: str
    entity: EntityRef
    entity_name: str
    start: int
    end: int | None  # None while ongoing
    status: EventStatus
    scope: Scope
    kind: EventKind
    score: float  # cross-signal product of per-signal maxima (IODA)
    confidence: float  # 0..1
    min_ratio: float
    signals: tuple[SignalEvidence, ...]
    rules: tuple[str, ...]  # detector / rule ids that decided
    #: fusion and classification (netvigil.events.fusion): severity, signal health, class,
    #: scope members, lifecycle history; JSON-ready, {} when not assessed. Not compared: its
    #: history depends on the path (what was seen when), so stores that saw the same data
    #: bin by bin and at once hold equal events with different histories.
    assessment: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def duration(self) -> int | None:
        return None if self.end is None else self.end - self.start
