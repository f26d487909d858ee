"""Set-based reads and writes for detection: new points of many series, detector state,
alerts and events in bulk (one statement per batch, never one call per series).

A mixin of :class:`netvigil.store.duck.Store`; it uses only ``self._con`` and
``self.transaction()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb


class DetectionTables:
    _con: duckdb.DuckDBPyConnection

    def transaction(self) -> AbstractContextManager[None]:  # provided by Store
        raise NotImplementedError

    def _unused(self) -> Iterator[None]:  # placeholder until the detection work lands
        yield None
