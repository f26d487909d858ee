"""Set-based ``Store.write_points`` against a plain reference model (hypothesis).

The model keeps every stored point in a dict and applies the documented grid rules of
``netvigil.store.duck`` literally (exact case over all known times, refinement by gcd
otherwise); the store must agree on counts, values, bounds, step and origin after any
sequence of random batches, never hold a key twice, and re-writing changes nothing.
"""

from __future__ import annotations

import math
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netvigil.model import make_ref, signal_kind
from netvigil.store import Store, WriteResult

T0 = 1_641_340_800
SERIES = [("country", "KZ", "bgp"), ("asn", "9198", "probing"), ("country", "UA", "custom")]


@dataclass
class ModelSeries:
    points: dict[int, float] = field(default_factory=dict)
    step: int = 0
    origin: int = 0
    declared: int | None = None


def _pmod(a: int, m: int) -> int:
    return a % m  # Python's % is already in [0, m)


def full_rules(times: list[int], native: int, declared: int | None) -> int:
    """Rules 1-4 of the module docstring over every time of the series."""
    ts = sorted(set(times))
    gaps = [b - a for a, b in zip(ts, ts[1:], strict=False)]
    g = math.gcd(*gaps) if gaps else None
    mode = None
    if gaps:
        c = Counter(gaps)
        mode = min(c, key=lambda d: (-c[d], d))
    if declared is not None and (g is None or g % declared == 0):
        return declared
    native_fit = all(t % native == 0 for t in ts)
    mode_fit = g is not None and mode is not None and g == mode
    if mode is None or (native_fit and (mode == native or not mode_fit)):
        return native
    if mode_fit:
        assert mode is not None
        return mode
    assert g is not None
    return g


def model_write(m: ModelSeries, batch: dict[int, float], native: int,
                declared: int | None) -> tuple[int, int, int]:
    ins = upd = same = 0
    for t, v in batch.items():
        if t not in m.points:
            ins += 1
        elif (m.points[t] == v) or (math.isnan(m.points[t]) and math.isnan(v)):
            same += 1
        else:
            upd += 1
    dec = declared if declared is not None else m.declared
    n_before = len(m.points)
    known = sorted(m.points)
    if n_before <= 2:
        times = list(batch) + known
        m.step = full_rules(times, native, dec)
        m.origin = _pmod(min(times), m.step)
    else:
        g = m.step
        for t in batch:
            g = math.gcd(g, _pmod(t - m.origin, m.step))
        m.step = dec if dec is not None and g % dec == 0 else g
        m.origin = _pmod(m.origin, m.step)
    m.declared = dec
    m.points.update(batch)
    return ins, upd, same


offsets = st.one_of(st.integers(0, 40).map(lambda k: 300 * k),
                    st.integers(0, 20).map(lambda k: 3600 * k),
                    st.integers(0, 400).map(lambda k: 60 * k + 7))
values = st.one_of(st.just(math.nan), st.just(0.0), st.floats(-1e6, 1e6, allow_nan=False))
batch_st = st.tuples(
    st.lists(st.tuples(st.integers(0, len(SERIES) - 1), offsets, values), min_size=1,
             max_size=25),
    st.one_of(st.none(), st.sampled_from([60, 300, 600, 3600])),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(batch_st, min_size=1, max_size=6))
def test_random_batches_match_the_reference_model(
        batches: list[tuple[list[tuple[int, int, float]], int | None]]) -> None:
    model = {i: ModelSeries() for i in range(len(SERIES))}
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "s.duckdb") as store:
        for rows, declared in batches:
            per: dict[int, dict[int, float]] = {}
            for i, off, v in rows:
                per.setdefault(i, {})[T0 + off] = v  # last wins, as in the store
            expect = [0, 0, 0]
            for i, pts in per.items():
                got = model_write(model[i], pts, signal_kind(SERIES[i][2]).native_step,
                                  declared)
                expect = [a + b for a, b in zip(expect, got, strict=True)]
            res = store.write_points(
                [SERIES[i][0] for i, _, _ in rows], [SERIES[i][1] for i, _, _ in rows],
                [SERIES[i][2] for i, _, _ in rows],
                np.array([T0 + off for _, off, _ in rows], dtype=np.int64),
                np.array([v for _, _, v in rows]), source="t", step=declared)
            assert res == WriteResult(*expect)
        _check_against_model(store, model)
        # re-writing everything that is stored changes nothing
        for i, m in model.items():
            if not m.points:
                continue
            ts = sorted(m.points)
            n = len(ts)
            again = store.write_points([SERIES[i][0]] * n, [SERIES[i][1]] * n,
                                       [SERIES[i][2]] * n, np.array(ts, dtype=np.int64),
                                       np.array([m.points[t] for t in ts]), source="t")
            assert again == WriteResult(0, 0, n)
        _check_against_model(store, model)


def _check_against_model(store: Store, model: dict[int, ModelSeries]) -> None:
    con = store.connection
    row = con.execute("SELECT count(*), count(DISTINCT (entity_type, entity_code, signal, time))"
                      " FROM points").fetchone()
    assert row is not None and row[0] == row[1]  # no key stored twice
    infos = {(i.entity.type.value, i.entity.code, i.signal): i for i in store.list_series()}
    for i, m in model.items():
        key = SERIES[i]
        if not m.points:
            assert key not in infos
            continue
        info = infos[key]
        assert (info.points, info.first, info.last) == (len(m.points), min(m.points),
                                                        max(m.points))
        assert info.step == m.step
        assert store.series_grid(make_ref(key[0], key[1]), key[2]) == (m.step, m.origin)
        series = store.read_series(make_ref(key[0], key[1]), key[2])
        # vectorised: a coarse step over a wide span makes grids of 10^5 bins, and a Python
        # loop over them was a fifth of this test's time
        want_t = np.array(sorted(m.points), dtype=np.int64)
        want_v = np.array([m.points[t] for t in want_t.tolist()], dtype=np.float64)
        pos = np.searchsorted(series.times, want_t)
        assert (pos < series.times.size).all() and (series.times[pos] == want_t).all()
        assert np.array_equal(series.values[pos], want_v, equal_nan=True)
        assert np.count_nonzero(~np.isnan(series.values)) == np.count_nonzero(~np.isnan(want_v))


def test_a_new_bin_after_the_last_never_probes_old_points(tmp_path: Path) -> None:
    """The streaming case: the second bin is all inserts, the grid and bounds move on."""
    with Store(tmp_path / "s.duckdb") as store:
        n = 500
        codes = [str(i + 1) for i in range(n)]
        for b in range(3):
            res = store.write_points(["asn"] * n, codes, ["bgp"] * n,
                                     np.full(n, T0 + 300 * b, dtype=np.int64),
                                     np.arange(n, dtype=np.float64), source="t")
            assert res == WriteResult(n, 0, 0)
        info = store.list_series()[0]
        assert (info.step, info.points, info.first, info.last) == (300, 3, T0, T0 + 600)


def test_one_point_then_hourly_coarsens_to_the_hourly_grid(tmp_path: Path) -> None:
    """A series written one bin per call: the second call re-decides from both points."""
    with Store(tmp_path / "s.duckdb") as store:
        for k in range(4):
            store.write_points(["country"], ["KZ"], ["probing"],
                               np.array([T0 + 3600 * k], dtype=np.int64), np.array([1.0]),
                               source="t")
        assert store.series_grid(make_ref("country", "KZ"), "probing") == (3600, T0 % 3600)
        assert len(store.read_series(make_ref("country", "KZ"), "probing")) == 4
