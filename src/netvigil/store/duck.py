"""DuckDB-backed store. INTERFACE SKELETON - the store owner implements the bodies.

Contract (other modules code against exactly these signatures):

* times are unix seconds (int), values float with NaN = missing (stored as SQL NULL);
* every write is idempotent: writing the same facts twice changes nothing;
* ``transaction()`` groups writes so that a failure leaves the store unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from netvigil.model import Alert, Entity, EntityRef, Event, Series


@dataclass(frozen=True)
class SeriesInfo:
    entity: EntityRef
    signal: str
    step: int
    points: int  # stored points (missing values included as NULL rows count too)
    first: int | None
    last: int | None


@dataclass(frozen=True)
class WriteResult:
    inserted: int
    updated: int
    unchanged: int


class Store:
    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        raise NotImplementedError
        yield

    def schema_version(self) -> int:
        raise NotImplementedError

    # -- entities ---------------------------------------------------------------------------
    def upsert_entities(self, entities: Sequence[Entity]) -> int:
        raise NotImplementedError

    def entity_name(self, ref: EntityRef) -> str | None:
        raise NotImplementedError

    # -- series -----------------------------------------------------------------------------
    def write_points(
        self,
        entity_types: Sequence[str],
        entity_codes: Sequence[str],
        signals: Sequence[str],
        times: npt.NDArray[np.int64],
        values: npt.NDArray[np.float64],
        *,
        source: str,
    ) -> WriteResult:
        """Columnar upsert keyed by (entity_type, entity_code, signal, time)."""
        raise NotImplementedError

    def write_series(self, series: Series, *, source: str) -> WriteResult:
        raise NotImplementedError

    def list_series(self) -> list[SeriesInfo]:
        raise NotImplementedError

    def read_series(
        self, entity: EntityRef, signal: str, start: int | None = None, until: int | None = None
    ) -> Series:
        """The stored points on the series' grid (step from the series table), gaps NaN."""
        raise NotImplementedError

    # -- alerts and events ------------------------------------------------------------------
    def replace_alerts(self, entity: EntityRef, signal: str, method: str,
                       alerts: Sequence[Alert]) -> None:
        raise NotImplementedError

    def read_alerts(self, entity: EntityRef | None = None, start: int | None = None,
                    until: int | None = None) -> list[Alert]:
        raise NotImplementedError

    def replace_events(self, entity: EntityRef, events: Sequence[Event]) -> None:
        raise NotImplementedError

    def read_events(self, entity: EntityRef | None = None, start: int | None = None,
                    until: int | None = None) -> list[Event]:
        raise NotImplementedError

    # -- bookkeeping ------------------------------------------------------------------------
    def get_state(self, key: str) -> str | None:
        raise NotImplementedError

    def set_state(self, key: str, value: str) -> None:
        raise NotImplementedError

    def export_parquet(self, directory: str | Path) -> list[Path]:
        raise NotImplementedError
