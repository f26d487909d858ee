"""Alerts: level transitions of one signal on one entity (IODA watchtower AlertKafka)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from netvigil.model.entities import EntityRef


class Level(IntEnum):
    """Coded as watchtower-alert does: normal 0, warning 1, critical 2."""

    NORMAL = 0
    WARNING = 1
    CRITICAL = 2

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Alert:
    entity: EntityRef
    signal: str
    time: int  # unix seconds; start of the state (kept from its first bin, per minduration)
    level: Level
    value: float
    history_value: float  # the baseline (moving median) at `time`
    method: str  # detector id, e.g. "ioda.median"
    condition: str  # e.g. "< 0.5"

    @property
    def ratio(self) -> float:
        return self.value / self.history_value if self.history_value else float("nan")
