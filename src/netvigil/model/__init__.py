"""NetVigil's vocabulary: frozen types and enums, no I/O."""

from netvigil.model.alerts import Alert, Level
from netvigil.model.entities import Entity, EntityRef, EntityType, canonical_code, make_ref
from netvigil.model.errors import (
    ErrorPolicy,
    GeoDataError,
    InputError,
    InvalidEntity,
    NetVigilError,
    StoreError,
)
from netvigil.model.events import Event, EventKind, EventStatus, Scope, SignalEvidence
from netvigil.model.series import Observed, Series
from netvigil.model.signals import (
    KNOWN_SIGNALS,
    Direction,
    SignalKind,
    SourceFamily,
    signal_kind,
)

__all__ = [
    "KNOWN_SIGNALS",
    "Alert",
    "Direction",
    "Entity",
    "EntityRef",
    "EntityType",
    "ErrorPolicy",
    "Event",
    "EventKind",
    "EventStatus",
    "GeoDataError",
    "InputError",
    "InvalidEntity",
    "Level",
    "NetVigilError",
    "Observed",
    "Scope",
    "Series",
    "SignalEvidence",
    "SignalKind",
    "SourceFamily",
    "StoreError",
    "canonical_code",
    "make_ref",
    "signal_kind",
]
