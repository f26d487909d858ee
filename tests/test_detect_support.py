"""Test support for the detection and events tests: the KZ entity, a start time and a
Series builder. (The dict-backed FakeStore is gone: the runner now needs the store's
set-based detection methods, so its tests run on a real DuckDB store.)"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from netvigil.model import EntityRef, Series, make_ref

KZ = make_ref("country", "KZ")
T0 = 1_641_254_400  # 2022-01-04T00:00:00Z


def series(signal: str, values: Sequence[float] | np.ndarray, *, step: int = 600,
           entity: EntityRef = KZ, start: int = T0) -> Series:
    return Series(entity, signal, start, step, np.asarray(values, dtype=np.float64))


def test_series_builder_places_points_on_the_grid() -> None:
    s = series("probing", [1.0, np.nan, 3.0], step=300)
    assert s.times.tolist() == [T0, T0 + 300, T0 + 600] and s.entity == KZ
