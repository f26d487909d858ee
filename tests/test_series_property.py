"""Property tests: any valid CSV round-trips through import, and re-import changes nothing."""

from __future__ import annotations

import math
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netvigil.model import make_ref
from netvigil.pipeline import Pipeline
from netvigil.series.importers import import_file
from netvigil.store import Store, WriteResult

T0 = 1_641_340_800
ENTITIES = [("country", "kz", "KZ"), ("country", "UA", "UA"), ("asn", "AS9198", "9198"),
            ("asn", "15169", "15169"), ("region", "kz-75", "KZ-75")]
COUNT_SIGNALS = {"bgp", "probing", "telescope"}
SIGNALS = ["bgp", "probing", "telescope", "platform:x", "my signal"]

values = st.one_of(
    st.none(),
    st.just(0.0),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12),
)


@st.composite
def rows(draw: st.DrawFn) -> list[tuple[int, int, int, float | None, int]]:
    """(entity index, signal index, bin, value, time-format index), unique per key."""
    keys = draw(st.lists(
        st.tuples(st.integers(0, len(ENTITIES) - 1), st.integers(0, len(SIGNALS) - 1),
                  st.integers(0, 40)),
        min_size=1, max_size=40, unique=True))
    # count signals cannot be negative (issue 12, rule count-nonnegative)
    return [(e, s, b, _sign(SIGNALS[s], draw(values)), draw(st.integers(0, 3)))
            for e, s, b in keys]


def _sign(signal: str, v: float | None) -> float | None:
    return abs(v) if v is not None and signal in COUNT_SIGNALS else v


def fmt_time(t: int, style: int) -> str:
    dt = datetime.fromtimestamp(t, tz=UTC)
    if style == 0:
        return str(t)
    if style == 1:
        return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    if style == 2:
        return dt.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat()
    return dt.replace(tzinfo=None).isoformat()  # naive = UTC


def render(data: list[tuple[int, int, int, float | None, int]]) -> str:
    lines = ["signal,value,entity_code,time,entity_type"]  # column order is free
    for e, s, b, v, style in data:
        etype, raw, _ = ENTITIES[e]
        lines.append(f"{SIGNALS[s]},{'' if v is None else repr(v)},{raw},"
                     f"{fmt_time(T0 + 600 * b, style)},{etype}")
    return "\n".join(lines) + "\n"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows())
def test_random_valid_rows_round_trip_and_reimport_is_unchanged(
        data: list[tuple[int, int, int, float | None, int]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "rows.csv"
        f.write_text(render(data))
        with Store(Path(tmp) / "s.duckdb") as store:
            first = import_file(store, f, sink=Pipeline(store))
            assert first.result == WriteResult(len(data), 0, 0)
            expected: dict[tuple[str, str, str], dict[int, float | None]] = {}
            for e, s, b, v, _ in data:
                etype, _, code = ENTITIES[e]
                expected.setdefault((etype, code, SIGNALS[s]), {})[T0 + 600 * b] = v
            listed = store.list_series()
            assert [(i.entity.type.value, i.entity.code, i.signal) for i in listed] == sorted(
                expected)
            for (etype, code, sig), pts in expected.items():
                series = store.read_series(make_ref(etype, code), sig)
                got = dict(zip(series.times.tolist(), series.values.tolist(), strict=True))
                for t, v in pts.items():
                    if v is None:
                        assert math.isnan(got[t])
                    else:
                        assert got[t] == v
                # every other grid point is a gap
                assert sum(not np.isnan(x) for x in got.values()) == sum(
                    v is not None for v in pts.values())
            again = import_file(store, f, sink=Pipeline(store))
            assert again.result == WriteResult(0, 0, len(data))
            assert store.list_series() == listed
