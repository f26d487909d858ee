"""Rows put in series order without the query's ORDER BY (netvigil.store.grouping): the
counting sort and numpy's path give what ``ORDER BY idx, time`` gives, whatever order the
rows arrive in (table order, reversed, backfilled rows inside a series), and the store's
points read equals the same read with DuckDB's ORDER BY."""

from __future__ import annotations

import numpy as np
import pytest

from netvigil.store import Store
from netvigil.store.detection import SeriesKeys
from netvigil.store.grouping import by_series


def _rows(seed: int, n: int, per: int, layout: str) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    label = rng.permutation(n)  # the caller's idx is not the table's order
    t = np.arange(per, dtype=np.int64) * 300
    if layout == "series-major":
        idx, time = np.repeat(label, per), np.tile(t, n)
    elif layout == "time-major":
        idx, time = np.tile(label, per), np.repeat(t, n)
    else:  # shuffled: every series out of time order
        o = rng.permutation(n * per)
        idx, time = np.repeat(label, per)[o], np.tile(t, n)[o]
    value = rng.normal(size=len(idx))
    value[rng.random(len(idx)) < 0.05] = np.nan
    return idx.astype(np.int64), time, value


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("layout", ["series-major", "time-major", "shuffled"])
def test_by_series_equals_order_by(layout: str, compiled: bool) -> None:
    idx, time, value = _rows(3, 40, 97, layout)
    ref = np.lexsort((time, idx))
    got_i, got_t, got_v = by_series(idx.copy(), time, value, 40, compiled=compiled)
    assert np.array_equal(got_i, idx[ref])
    assert np.array_equal(got_t, time[ref])
    assert np.array_equal(got_v, value[ref], equal_nan=True)


def test_by_series_series_without_rows_and_one_backfilled_row() -> None:
    idx = np.array([2, 0, 2, 2, 0], np.int64)  # series 1 has no rows; 2 gets a late row
    time = np.array([600, 0, 900, 300, 300], np.int64)
    value = np.array([1.0, 2.0, 3.0, 4.0, np.nan])
    got = by_series(idx.copy(), time, value, 3, compiled=True)
    assert got[0].tolist() == [0, 0, 2, 2, 2]
    assert got[1].tolist() == [0, 300, 300, 600, 900]
    assert np.array_equal(got[2], [2.0, np.nan, 4.0, 1.0, 3.0], equal_nan=True)


def test_read_points_after_equals_duckdb_order_by(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A store whose rows were appended out of time order (a backfill after newer bins),
    with NULL values: the read equals DuckDB's ``ORDER BY idx, time`` of the same join."""
    with Store(tmp_path / "s.duckdb") as store:
        codes = ["KZ", "UZ", "EG"]
        for lo, hi in ((10, 20), (0, 10)):  # newer bins first, then the older ones
            t = np.arange(lo, hi, dtype=np.int64) * 300
            n = len(t)
            vals = np.arange(n * 3, dtype=np.float64)
            vals[::4] = np.nan
            store.write_points(["country"] * (3 * n), [c for c in codes for _ in range(n)],
                               ["bgp"] * (3 * n), np.tile(t, 3), vals, source="t", step=300)
        keys = SeriesKeys(np.array(["country"] * 3, object), np.array(["UZ", "EG", "KZ"], object),
                          np.array(["bgp"] * 3, object))
        after = np.array([-(2**62), 1500, 4500], np.int64)
        got = store.read_points_after(keys, after)
        con = store.connection
        con.register("_q", {"entity_type": keys.entity_type, "entity_code": keys.entity_code,
                            "signal": keys.signal, "idx": np.arange(3, dtype=np.int64),
                            "after": after})
        ref = con.execute("SELECT q.idx, p.time, coalesce(p.value, 'NaN'::DOUBLE) FROM points p"
                          " JOIN _q q USING (entity_type, entity_code, signal)"
                          " WHERE p.time > q.after ORDER BY q.idx, p.time").fetchall()
        con.unregister("_q")
    assert len(ref) == 20 + 14 + 4
    assert got.idx.tolist() == [r[0] for r in ref]
    assert got.time.tolist() == [r[1] for r in ref]
    assert np.array_equal(got.value, np.array([r[2] for r in ref]), equal_nan=True)
