"""Incremental ``ioda.median``: chunks through saved states give the from-scratch alerts.

The property: for any series (gaps, drops, recoveries, outages longer than maxduration,
gaps longer than the history that restart the warmup) and any split into chunks, feeding
the chunks through ``IodaMedian.update`` with the state serialised to bytes and read back
in between gives exactly ``IodaMedian.detect`` on the whole series. Short rule parameters
(in bins) make every branch reachable in short series.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netvigil.detect import IodaMedian, load_rules
from netvigil.detect import median_kernel as mk
from netvigil.detect.protocol import PointChunk
from netvigil.events.runner import run_detection
from netvigil.model import Alert, Event, Series, make_ref

KZ = make_ref("country", "KZ")
T0 = 1_641_254_400
STEP = 300


def small_rules(history: int, warmup: int, maxduration: int, minduration: int,
                minprediction: float) -> dict[str, object]:
    base = load_rules()
    return {fam: replace(r, history=history * STEP, warmup=warmup * STEP,
                         maxduration=maxduration * STEP, minduration=minduration * STEP,
                         minprediction=minprediction)
            for fam, r in base.items()}


@st.composite
def segments(draw: st.DrawFn) -> np.ndarray:
    """A series as a concatenation of level segments, with noise, NaN gaps and long gaps."""
    parts = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["level", "drop", "zero", "gap", "spike", "noise"]))
        n = draw(st.integers(1, 40))
        if kind == "gap":
            parts.append(np.full(n, np.nan))
            continue
        level = float(draw(st.sampled_from([0, 3, 25, 100, 1000])))
        if kind == "drop":
            level *= draw(st.sampled_from([0.1, 0.45, 0.7, 0.9]))
        elif kind == "zero":
            level = 0.0
        elif kind == "spike":
            level *= 3
        seg = np.full(n, level)
        if kind == "noise":
            seg = seg + np.asarray(draw(st.lists(st.integers(-30, 30), min_size=n,
                                                 max_size=n)), dtype=float)
        if draw(st.booleans()):
            seg = seg + 0.5  # non-integer values take the float state encoding
        holes = draw(st.lists(st.integers(0, n - 1), max_size=3))
        seg[holes] = np.nan
        parts.append(seg)
    return np.concatenate(parts)


@st.composite
def cases(draw: st.DrawFn) -> tuple[Series, IodaMedian, list[int]]:
    values = draw(segments())
    warmup = draw(st.integers(0, 6))
    history = draw(st.integers(warmup + 1, 30))
    det = IodaMedian(small_rules(history, warmup, draw(st.integers(1, 40)),
                                 draw(st.integers(0, 3)),
                                 draw(st.sampled_from([0.0, 1.0, 20.0]))))  # type: ignore[arg-type]
    signal = draw(st.sampled_from(["probing", "bgp", "telescope", "platform:x"]))
    s = Series(KZ, signal, T0, STEP, values)
    cuts = sorted(set(draw(st.lists(st.integers(0, len(values)), max_size=6))))
    return s, det, cuts


def feed(det: IodaMedian, s: Series, cuts: list[int]) -> list[Alert]:
    """Feed ``s`` in chunks split at ``cuts``; the state goes through bytes in between."""
    state: bytes | None = None
    alerts: list[Alert] = []
    bounds = [0, *cuts, len(s)]
    for a, b in zip(bounds, bounds[1:], strict=False):
        part = Series(s.entity, s.signal, s.start + a * s.step, s.step, s.values[a:b])
        out = det.update(PointChunk.from_series([part]), [state])
        state = bytes(bytearray(out.states[0]))  # a copy, as read back from the store
        alerts += out.alerts
    return alerts


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_chunks_through_states_equal_one_pass(case: tuple[Series, IodaMedian, list[int]]) -> None:
    s, det, cuts = case
    assert feed(det, s, cuts) == det.detect(s)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(cases(), min_size=1, max_size=5))
def test_many_series_in_one_batch(batch: list[tuple[Series, IodaMedian, list[int]]]) -> None:
    """Series of one batch do not leak into each other (CSR offsets, capacity regions)."""
    det = batch[0][1]
    series = [Series(make_ref("asn", str(k + 1)), s.signal, s.start, s.step, s.values)
              for k, (s, _, _) in enumerate(batch)]
    half = [len(s) // 2 for s in series]
    first = [Series(s.entity, s.signal, s.start, s.step, s.values[:h])
             for s, h in zip(series, half, strict=True)]
    rest = [Series(s.entity, s.signal, s.start + h * s.step, s.step, s.values[h:])
            for s, h in zip(series, half, strict=True)]
    one = det.update(PointChunk.from_series(first), [None] * len(series))
    two = det.update(PointChunk.from_series(rest), one.states)
    for s in series:
        got = [a for a in one.alerts + two.alerts if a.entity == s.entity]
        assert got == det.detect(s)


@pytest.fixture
def pure_python() -> Iterator[None]:
    saved = dict(mk._COMPILED)
    mk._COMPILED.clear()
    mk._COMPILED.update(mk._PY)
    try:
        yield
    finally:
        mk._COMPILED.clear()
        mk._COMPILED.update(saved)


def outage_series(rng: np.random.Generator, n: int = 3000) -> Series:
    v = 1000 + rng.integers(-40, 40, n).astype(float)
    v[1500:1560] = 20.0
    v[2000:2010] = np.nan
    v[2500:] *= 0.3  # a lasting change: inpainting gives up after maxduration
    return Series(KZ, "bgp", T0, STEP, v)


def test_compiled_and_python_kernels_agree(pure_python: None) -> None:
    rng = np.random.default_rng(7)
    s = outage_series(rng)
    det = IodaMedian()
    chunk = PointChunk.from_series([s])
    py = det.update(chunk, [None])
    mk._COMPILED.clear()  # back to the compiled kernels, if numba is there
    compiled = det.update(chunk, [None])
    assert py.alerts == compiled.alerts == det.detect(s)
    assert py.states == compiled.states


def test_output_column_grows_when_a_state_does_not_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The packed states are the same when the output column starts at one byte and must
    grow (the kernel stops before a series that may not fit and is called again)."""
    rng = np.random.default_rng(11)
    series = [Series(make_ref("asn", str(k + 1)), "bgp", T0, STEP,
                     1000 + rng.integers(-40, 40, 400).astype(float)) for k in range(5)]
    det = IodaMedian()
    half = PointChunk.from_series([Series(s.entity, s.signal, s.start, s.step, s.values[:300])
                                   for s in series])
    rest = PointChunk.from_series([Series(s.entity, s.signal, s.start + 300 * STEP, s.step,
                                          s.values[300:]) for s in series])
    roomy = det.update(rest, det.update(half, [None] * 5).states)
    monkeypatch.setattr(mk, "_out_room", lambda *args: 1)
    tight_first = det.update(half, [None] * 5)
    tight = det.update(rest, tight_first.states)
    assert tight.states == roomy.states
    assert tight.alerts == roomy.alerts


def test_state_is_compact_for_counts() -> None:
    """A warm 24 h window of 5-minute integer counts packs into a few hundred bytes."""
    rng = np.random.default_rng(3)
    s = Series(KZ, "bgp", T0, STEP, 1000 + rng.integers(-40, 40, 600).astype(float))
    (state,) = IodaMedian().update(PointChunk.from_series([s]), [None]).states
    assert mk.HEADER < len(state) < 3 * 288  # 288 points: < 3 bytes each with the header


def test_unjudged_signal_is_refused() -> None:
    s = Series(KZ, "probing-loss", T0, 600, np.ones(5))
    with pytest.raises(ValueError, match="not judged"):
        IodaMedian().update(PointChunk.from_series([s]), [None])
    assert IodaMedian().configure("probing-latency-p90") is None
    assert IodaMedian().configure("probing-state") is None


# -- end to end through the store --------------------------------------------------------
AS1 = make_ref("asn", "9198")


def e2e_series() -> list[Series]:
    """Two entities, two steps: a drop and recovery, a gap, an outage still open at the end."""
    rng = np.random.default_rng(11)
    n = 90
    kz_bgp = 1000 + rng.integers(-20, 20, n).astype(float)
    kz_bgp[30:40] = 100.0
    kz_bgp[50:53] = np.nan
    kz_bgp[80:] = 0.0  # ongoing at the end
    kz_probe = 500 + rng.integers(-10, 10, n // 2).astype(float)
    kz_probe[15:20] = 50.0
    as_bgp = 300 + rng.integers(-5, 5, n).astype(float)
    as_bgp[60:75] = 120.0
    loss = rng.random(n // 2) * 5  # not judged
    return [Series(KZ, "bgp", T0, STEP, kz_bgp), Series(KZ, "probing", T0, 2 * STEP, kz_probe),
            Series(AS1, "bgp", T0, STEP, as_bgp), Series(AS1, "probing-loss", T0, 2 * STEP, loss)]


def small_detector() -> IodaMedian:
    return IodaMedian(small_rules(12, 3, 20, 1, 20.0))  # type: ignore[arg-type]


def write_until(store: object, series: list[Series], lo: int, hi: int) -> None:
    """Write every point with lo <= time < hi, all series in one set-based call."""
    types, codes, sigs, times, vals = [], [], [], [], []
    for s in series:
        m = (s.times >= lo) & (s.times < hi)
        k = int(m.sum())
        types += [s.entity.type.value] * k
        codes += [s.entity.code] * k
        sigs += [s.signal] * k
        times.append(s.times[m])
        vals.append(s.values[m])
    if types:
        store.write_points(types, codes, sigs, np.concatenate(times),  # type: ignore[attr-defined]
                           np.concatenate(vals), source="test")


def fresh(tmp: object, series: list[Series], until: int) -> tuple[list[Alert], list[Event]]:
    from netvigil.store.duck import Store

    path = tmp / f"fresh-{until}.duckdb"  # type: ignore[operator]
    with Store(path) as st_:
        write_until(st_, series, 0, until)
        run_detection(st_, detector=small_detector())
        return st_.read_alerts(), st_.read_events()


def test_bin_by_bin_through_the_store_equals_one_fresh_run(tmp_path: object) -> None:
    from netvigil.store.duck import Store

    series = e2e_series()
    end = max(s.end for s in series)
    with Store(tmp_path / "inc.duckdb") as store:  # type: ignore[operator]
        t = T0
        checked_open = False
        while t < end:
            write_until(store, series, t, t + STEP)
            t += STEP
            rep = run_detection(store, detector=small_detector())
            assert rep.series_skipped == 1 and rep.points_read <= 3
            if t == T0 + 35 * STEP:  # inside the first KZ outage: an open event
                got = store.read_alerts(), store.read_events()
                assert any(e.end is None for e in got[1])
                assert got == fresh(tmp_path, series, t)
                checked_open = True
        assert checked_open
        alerts, events = store.read_alerts(), store.read_events()
    assert (alerts, events) == fresh(tmp_path, series, end)
    assert len(events) >= 3 and any(e.end is None for e in events)


def test_backfill_and_rule_change_recompute(tmp_path: object) -> None:
    """A row inserted at or before the cursor (a late bin, a NULL row) or another rule
    digest recomputes the series from scratch; the result equals a fresh run."""
    from netvigil.store.duck import Store

    series = e2e_series()
    end = max(s.end for s in series)
    late = T0 + 33 * STEP
    with Store(tmp_path / "bf.duckdb") as store:  # type: ignore[operator]
        write_until(store, series, 0, late)
        write_until(store, series, late + STEP, T0 + 60 * STEP)  # bin `late` arrives late
        run_detection(store, detector=small_detector())
        write_until(store, series, late, late + STEP)
        rep = run_detection(store, detector=small_detector())
        assert rep.series_recomputed == 2 and rep.series_updated == 0  # KZ bgp, AS bgp
        write_until(store, series, T0 + 60 * STEP, end)
        rep = run_detection(store, detector=small_detector())
        assert rep.series_recomputed == 0 and rep.series_updated == 3
        assert (store.read_alerts(), store.read_events()) == fresh(tmp_path, series, end)

        # a NULL row written before the first point of a series: a count change
        store.write_points(["asn"], ["9198"], ["bgp"], np.array([T0 - STEP]),
                           np.array([np.nan]), source="test")
        rep = run_detection(store, detector=small_detector())
        assert (rep.series_recomputed, rep.series_updated, rep.series_unchanged) == (1, 0, 2)

        # another rule: every judged series from scratch, alerts replaced not appended
        rep = run_detection(store, detector=IodaMedian())  # packaged rules, other digests
        assert rep.series_recomputed == 3
        keys = {(a.entity, a.signal, a.time) for a in store.read_alerts()}
        assert len(keys) == len(store.read_alerts())
        rep = run_detection(store, detector=IodaMedian(), rebuild=True)
        assert rep.series_recomputed == 3 and rep.alerts_written == len(store.read_alerts())


def test_points_at_or_before_the_state_are_refused() -> None:
    """Feeding a point again (a backfill the runner failed to route to a recompute) is an
    error, not a silently wrong window."""
    s = Series(KZ, "bgp", T0, STEP, np.full(20, 100.0))
    det = IodaMedian()
    (state,) = det.update(PointChunk.from_series([s]), [None]).states
    with pytest.raises(ValueError, match="not after its state"):
        det.update(PointChunk.from_series([s]), [state])
    backwards = PointChunk([(KZ, "bgp")], np.array([0, 2]), np.array([T0 + 600, T0]),
                           np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="in time order"):
        det.update(backwards, [None])


def test_a_corrected_value_behind_the_cursor_recomputes_the_series(tmp_path: object) -> None:
    """A write that changes a stored value already consumed (same row count: the count check
    cannot see it) bumps ``series.rewrites``; the next run recomputes that series only, and
    the result equals a fresh run over the corrected data."""
    from netvigil.store.duck import Store

    series = e2e_series()
    end = max(s.end for s in series)
    with Store(tmp_path / "fix.duckdb") as store:  # type: ignore[operator]
        write_until(store, series, 0, end)
        run_detection(store, detector=small_detector())
        # the outage of KZ bgp (bins 30-39) was a collector fault: the corrected values
        kz = series[0]
        fixed = kz.values.copy()
        fixed[30:40] = 1000.0
        corrected = [Series(KZ, "bgp", kz.start, kz.step, fixed), *series[1:]]
        write_until(store, corrected[:1], T0 + 30 * STEP, T0 + 40 * STEP)
        rep = run_detection(store, detector=small_detector())
        assert (rep.series_recomputed, rep.series_updated) == (1, 0)
        assert (store.read_alerts(), store.read_events()) == fresh(tmp_path, corrected, end)
        # writing the same values again changes nothing, so nothing is recomputed
        write_until(store, corrected[:1], T0 + 30 * STEP, T0 + 40 * STEP)
        rep = run_detection(store, detector=small_detector())
        assert rep.series_recomputed == 0
