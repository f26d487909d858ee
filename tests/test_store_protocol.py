"""``Store`` satisfies the typed ``SeriesStore`` protocol (checked by mypy and at run time)."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np

from netvigil.model import make_ref
from netvigil.store import SeriesStore, Store, WriteResult


def _write_through_protocol(store: SeriesStore) -> WriteResult:
    """Code written against the protocol only; mypy checks the calls."""
    with store.transaction():
        return store.write_points(["country"], ["KZ"], ["bgp"],
                                  np.array([1_641_340_800], dtype=np.int64),
                                  np.array([3.0]), source="t")


def test_store_is_a_series_store(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as concrete:
        store: SeriesStore = concrete  # the mypy-checked assignment
        assert _write_through_protocol(store) == WriteResult(1, 0, 0)
        assert store.read_series(make_ref("country", "KZ"), "bgp").values.tolist() == [3.0]


def test_protocol_signatures_match_the_store() -> None:
    """Every protocol method exists on Store with the same parameter names."""
    members = [n for n, v in vars(SeriesStore).items()
               if not n.startswith("_") and (callable(v) or isinstance(v, property))]
    assert "write_points" in members and "transaction" in members
    for name in members:
        proto, impl = getattr(SeriesStore, name), getattr(Store, name)
        if isinstance(proto, property):
            assert isinstance(impl, property), name
            continue
        assert list(inspect.signature(proto).parameters) == list(
            inspect.signature(impl).parameters), name
