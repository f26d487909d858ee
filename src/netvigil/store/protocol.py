"""The typed store interface the rest of NetVigil codes against (issue 7, item 7).

Sources, the pipeline, detection and the CLI take a :class:`SeriesStore` rather than
``Any`` or the concrete :class:`netvigil.store.duck.Store`, so mypy checks every call and a
second implementation (a read-only view, a remote store) can stand in. ``Store`` satisfies it;
``tests/test_store_protocol.py`` holds the mypy-checked assignment.

Only what callers use is here; the detection tables (``netvigil.store.detection``) add their
own methods on ``Store`` and may extend this protocol when they land.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Protocol

import duckdb
import numpy as np
import numpy.typing as npt

from netvigil.model import Alert, Entity, EntityRef, EntityType, Event, Series
from netvigil.store.duck import ImportRecord, SeriesInfo, WriteResult


class SeriesStore(Protocol):
    """Points, series, entities, alerts, events and bookkeeping (see ``Store`` for semantics)."""

    # transactions: nested calls join the outer one; any exception rolls everything back
    def transaction(self) -> AbstractContextManager[None]: ...

    # points and series
    def write_points(
        self,
        entity_types: Sequence[str],
        entity_codes: Sequence[str],
        signals: Sequence[str],
        times: npt.NDArray[np.int64],
        values: npt.NDArray[np.float64],
        *,
        source: str,
        step: int | None = None,
    ) -> WriteResult: ...

    def write_series(self, series: Series, *, source: str) -> WriteResult: ...

    def read_series(self, entity: EntityRef, signal: str, start: int | None = None,
                    until: int | None = None, *, grid: tuple[int, int] | None = None
                    ) -> Series: ...

    def list_series(self) -> list[SeriesInfo]: ...

    def series_grid(self, entity: EntityRef, signal: str) -> tuple[int, int] | None: ...

    # entities
    def upsert_entities(self, entities: Sequence[Entity]) -> int: ...

    def entity_name(self, ref: EntityRef) -> str | None: ...

    def read_entities(self, entity_type: EntityType | None = None) -> list[Entity]: ...

    # alerts and events
    def replace_alerts(self, entity: EntityRef, signal: str, method: str,
                       alerts: Sequence[Alert]) -> None: ...

    def read_alerts(self, entity: EntityRef | None = None, start: int | None = None,
                    until: int | None = None) -> list[Alert]: ...

    def replace_events(self, entity: EntityRef, events: Sequence[Event]) -> None: ...

    def read_events(self, entity: EntityRef | None = None, start: int | None = None,
                    until: int | None = None) -> list[Event]: ...

    # bookkeeping: source cursors (key -> JSON text) and the imports log
    def get_state(self, key: str) -> str | None: ...

    def set_state(self, key: str, value: str) -> None: ...

    def record_import(self, rec: ImportRecord) -> int: ...

    def list_imports(self) -> list[ImportRecord]: ...

    # inspection
    def schema_version(self) -> int: ...

    def table_counts(self) -> dict[str, int]: ...

    @property
    def connection(self) -> duckdb.DuckDBPyConnection: ...
