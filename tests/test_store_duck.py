"""Store round trips: series (NaN vs 0), alerts, events, migrations, transactions, export."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pytest

from netvigil.model import (
    Alert,
    Entity,
    Event,
    EventKind,
    EventStatus,
    Level,
    Scope,
    Series,
    SignalEvidence,
    StoreError,
    make_ref,
)
from netvigil.store import Store, WriteResult, migrations

KZ = make_ref("country", "KZ")
AS = make_ref("asn", "9198")
T0 = 1_641_340_800  # 2022-01-05T00:00:00Z


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "nested" / "dir" / "store.duckdb")
    yield s
    s.close()


def test_open_creates_parent_dirs_and_latest_schema(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "s.duckdb"
    with Store(path) as s:
        assert s.schema_version() == migrations.LATEST_VERSION
    assert path.exists()


def test_series_round_trip_keeps_nan_distinct_from_zero(store: Store) -> None:
    values = np.array([5.0, 0.0, np.nan, 3.0, np.nan, 0.0])
    s = Series(KZ, "probing", T0, 600, values)
    res = store.write_series(s, source="test")
    assert res == WriteResult(6, 0, 0)
    back = store.read_series(KZ, "probing")
    assert back.start == T0 and back.step == 600
    np.testing.assert_array_equal(back.values, values)  # NaN positions equal, zeros kept
    assert store.write_series(s, source="test") == WriteResult(0, 0, 6)


def test_write_points_counts_updates_including_null_to_value(store: Store) -> None:
    t = np.array([T0, T0 + 300, T0 + 600], dtype=np.int64)
    store.write_points(["asn"] * 3, ["9198"] * 3, ["bgp"] * 3, t,
                       np.array([1.0, np.nan, 2.0]), source="a")
    res = store.write_points(["asn"] * 4, ["9198"] * 4, ["bgp"] * 4,
                             np.append(t, T0 + 900), np.array([1.0, 7.0, np.nan, 4.0]),
                             source="a")
    assert res == WriteResult(inserted=1, updated=2, unchanged=1)
    np.testing.assert_array_equal(store.read_series(AS, "bgp").values, [1.0, 7.0, np.nan, 4.0])


def test_read_series_gaps_are_nan_on_native_grid(store: Store) -> None:
    t = np.array([T0, T0 + 600, T0 + 2400], dtype=np.int64)
    store.write_points(["country"] * 3, ["KZ"] * 3, ["probing"] * 3, t,
                       np.array([1.0, 2.0, 3.0]), source="t")
    back = store.read_series(KZ, "probing")
    assert back.step == 600
    np.testing.assert_array_equal(back.values, [1.0, 2.0, np.nan, np.nan, 3.0])
    window = store.read_series(KZ, "probing", start=T0 + 600, until=T0 + 2400)
    assert window.start == T0 + 600 and len(window) == 1


def test_step_inferred_when_data_does_not_fit_native_grid(store: Store) -> None:
    t = T0 + 30 + 3600 * np.arange(5, dtype=np.int64)
    t = np.delete(t, 2)
    store.write_points(["country"] * 4, ["KZ"] * 4, ["mysignal"] * 4, t,
                       np.arange(4, dtype=np.float64), source="t")
    info = store.list_series()[0]
    assert info.step == 3600
    back = store.read_series(KZ, "mysignal")
    assert back.start == T0 + 30
    np.testing.assert_array_equal(back.values, [0.0, 1.0, np.nan, 2.0, 3.0])


def test_duplicate_keys_in_one_batch_last_wins(store: Store) -> None:
    res = store.write_points(["country"] * 2, ["KZ"] * 2, ["bgp"] * 2,
                             np.array([T0, T0], dtype=np.int64), np.array([1.0, 2.0]), source="t")
    assert res == WriteResult(1, 0, 0)
    assert store.read_series(KZ, "bgp").values.tolist() == [2.0]


def test_unknown_series_reads_empty(store: Store) -> None:
    assert len(store.read_series(KZ, "bgp")) == 0


def test_transaction_failure_leaves_store_unchanged(store: Store) -> None:
    store.set_state("k", "before")
    with pytest.raises(RuntimeError), store.transaction():
        store.set_state("k", "after")
        store.write_series(Series(KZ, "bgp", T0, 300, np.ones(3)), source="t")
        raise RuntimeError("boom")
    assert store.get_state("k") == "before"
    assert store.list_series() == []


def test_entities_upsert_keeps_known_names(store: Store) -> None:
    assert store.upsert_entities([Entity(AS, "KazakhTelecom", KZ)]) == 1
    assert store.upsert_entities([Entity(AS, "", None)]) == 0
    assert store.entity_name(AS) == "KazakhTelecom"
    assert store.read_entities()[0].parent == KZ
    assert store.entity_name(KZ) is None


def _alert(t: int, level: Level, value: float = 1.0) -> Alert:
    return Alert(KZ, "bgp", t, level, value, float("nan"), "ioda.median", "< 0.5")


def test_alerts_replace_is_deterministic(store: Store) -> None:
    alerts = [_alert(T0 + 600, Level.NORMAL), _alert(T0, Level.CRITICAL, 0.0)]
    store.replace_alerts(KZ, "bgp", "ioda.median", alerts)
    first = store.connection.execute("SELECT * FROM alerts ORDER BY seq").fetchall()
    store.replace_alerts(KZ, "bgp", "ioda.median", list(reversed(alerts)))
    assert store.connection.execute("SELECT * FROM alerts ORDER BY seq").fetchall() == first
    back = store.read_alerts(KZ)
    assert [a.time for a in back] == [T0, T0 + 600]
    assert back[0].value == 0.0 and math.isnan(back[0].history_value)
    assert back[0].level is Level.CRITICAL
    assert [a.time for a in store.read_alerts(start=T0 + 1)] == [T0 + 600]
    store.replace_alerts(KZ, "bgp", "ioda.median", [])
    assert store.read_alerts() == []


def _event(eid: str, start: int, end: int | None) -> Event:
    ev = (
        SignalEvidence("bgp", "ioda.median", start, end, 12.5, 0.1, 3.0, 30.0, "critical"),
        SignalEvidence("probing", "ioda.median", start, None, float("inf"), float("nan"),
                       0.0, 0.0, "warning"),
    )
    return Event(eid, KZ, "Kazakhstan", start, end,
                 EventStatus.ENDED if end else EventStatus.ONGOING, Scope.NATIONAL,
                 EventKind.OUTAGE, 150.0, 0.9, 0.1, ev, ("ioda.median", "rule.national"))


def test_events_round_trip_with_evidence(store: Store) -> None:
    events = [_event("e2", T0 + 7200, None), _event("e1", T0, T0 + 3600)]
    store.replace_events(KZ, events)
    back = store.read_events(KZ)
    assert [e.id for e in back] == ["e1", "e2"]
    e1 = back[0]
    # NaN != NaN, so compare the NaN-free parts exactly and the NaN field by isnan.
    assert dataclasses.replace(e1, signals=()) == dataclasses.replace(events[1], signals=())
    assert e1.signals[0] == events[1].signals[0]
    assert e1.signals[1].score == float("inf") and math.isnan(e1.signals[1].min_ratio)
    assert back[1].end is None and back[1].status is EventStatus.ONGOING
    assert [e.id for e in store.read_events(start=T0 + 3600)] == ["e2"]
    assert [e.id for e in store.read_events(until=T0 + 3600)] == ["e1"]
    rows = store.connection.execute("SELECT * FROM events ORDER BY id").fetchall()
    store.replace_events(KZ, list(reversed(events)))
    assert store.connection.execute("SELECT * FROM events ORDER BY id").fetchall() == rows
    store.replace_events(KZ, [events[0]])
    assert [e.id for e in store.read_events()] == ["e2"]


def test_state_round_trip(store: Store) -> None:
    assert store.get_state("x") is None
    store.set_state("x", "1")
    store.set_state("x", "2")
    assert store.get_state("x") == "2"


def test_migration_from_older_schema_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    assert migrations.migrate(con, target=1) == 1
    con.execute("INSERT INTO series VALUES ('country', 'KZ', 'bgp', 300, 'old')")
    con.execute(f"INSERT INTO points VALUES ('country', 'KZ', 'bgp', {T0}, 4.0)")
    con.close()
    with Store(path) as s:
        assert s.schema_version() == migrations.LATEST_VERSION
        versions = s.connection.execute(
            "SELECT version FROM schema_migrations ORDER BY version").fetchall()
        assert [v for (v,) in versions] == [m.version for m in migrations.MIGRATIONS]
        assert s.read_series(KZ, "bgp").values.tolist() == [4.0]
        assert s.read_alerts() == []


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.duckdb"
    Store(path).close()
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO schema_migrations (version, name) VALUES (999, 'future')")
    con.close()
    with pytest.raises(StoreError, match="newer"):
        Store(path)


def test_read_only_store_of_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        Store(tmp_path / "missing.duckdb", read_only=True)


def test_export_parquet_one_file_per_table(store: Store, tmp_path: Path) -> None:
    store.write_series(Series(KZ, "bgp", T0, 300, np.array([1.0, np.nan])), source="t")
    paths = store.export_parquet(tmp_path / "out")
    assert {p.name for p in paths} >= {"points.parquet", "series.parquet", "events.parquet"}
    assert all(p.exists() for p in paths)
    n = duckdb.sql(f"SELECT count(*), count(value) FROM '{tmp_path / 'out' / 'points.parquet'}'")
    assert n.fetchall() == [(2, 1)]


def test_irregular_gaps_use_a_grid_that_holds_every_point(store: Store) -> None:
    # gaps 1800 and 1200: the modal gap (1200) would misplace T0+3600, the gcd (600) does not
    t = np.array([T0 + 600, T0 + 2400, T0 + 3600], dtype=np.int64)
    store.write_points(["country"] * 3, ["KZ"] * 3, ["custom"] * 3, t + 7,
                       np.array([1.0, 2.0, 3.0]), source="t")
    back = store.read_series(KZ, "custom")
    assert back.step == 600 and back.start == T0 + 607
    assert dict(zip(back.times.tolist(), back.values.tolist(), strict=True))[T0 + 3607] == 3.0
