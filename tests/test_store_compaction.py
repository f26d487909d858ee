"""``Store.compact_points``: closed days rewritten clustered by series, nothing else changes.

The store is written through ``Store.write_points`` (the one write path), one 5-minute bin
for every series at a time as the pipeline writes, so the table starts time-ordered.
Expected rows are read before compaction with plain SQL and compared after; the physical
order is read from DuckDB's ``rowid``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from netvigil.model import EntityRef, EntityType
from netvigil.model.errors import StoreError
from netvigil.store.duck import CLUSTER_BUCKET_SECONDS, CLUSTERED_UNTIL_KEY, Store

DAY = 86_400
STEP = 300
T0 = 1_767_225_600 - 10 * DAY  # 10 days ending 2026-01-01, not aligned to a bucket
CODES = ["KZ", "UZ", "KG", "TJ", "TM", "AF"]


def _write_days(store: Store, first_day: int, days: int) -> None:
    """Every series, one bin at a time (time-ordered appends), values from the key."""
    times = T0 + first_day * DAY + STEP * np.arange(days * DAY // STEP, dtype=np.int64)
    n = len(CODES)
    for chunk in np.array_split(times, max(1, days // 4)):  # time-major, as bins arrive
        k = chunk.size
        t = np.repeat(chunk, n)
        vals = (t % 9_973).astype(np.float64) + np.tile(np.arange(n), k)
        vals[::37] = np.nan  # explicit missing values survive as NULL
        store.write_points(["country"] * (n * k), CODES * k, ["bgp"] * (n * k), t, vals,
                           source="test", step=STEP)


def _rows(store: Store) -> list[tuple[str, str, str, int, float | None]]:
    return store.connection.execute(
        "SELECT entity_type, entity_code, signal, time, value FROM points"
        " ORDER BY entity_code, time").fetchall()


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "s.duckdb")
    _write_days(s, 0, 9)
    return s


def test_compaction_keeps_every_row_and_clusters_closed_days(store: Store) -> None:
    before = _rows(store)
    kz_before = store.read_series(EntityRef(EntityType.COUNTRY, "KZ"), "bgp")
    done = store.compact_points()
    newest_day = T0 + 9 * DAY - STEP - (T0 + 9 * DAY - STEP) % DAY
    assert done.until == newest_day - DAY  # closed: older than the newest day minus one
    assert done.start == T0 - T0 % CLUSTER_BUCKET_SECONDS
    assert done.rows == sum(1 for r in before if int(r[3]) < done.until)
    assert _rows(store) == before  # same rows, same values, NULLs kept
    kz = store.read_series(EntityRef(EntityType.COUNTRY, "KZ"), "bgp")
    assert kz.start == kz_before.start
    np.testing.assert_array_equal(kz.values, kz_before.values)
    # physically: closed rows by (bucket, series, time), open rows after them by time
    order = store.connection.execute(
        "SELECT time, entity_code FROM points ORDER BY rowid").fetchall()
    closed = [(t // CLUSTER_BUCKET_SECONDS, c, t) for t, c in order if t < done.until]
    assert closed == sorted(closed)
    assert len({c for _, c, _ in closed[:100]}) == 1  # one series' run, not one bin's
    assert store.get_state(CLUSTERED_UNTIL_KEY) == str(done.until)


def test_compaction_is_idempotent_and_incremental(store: Store) -> None:
    first = store.compact_points()
    assert first.until is not None and first.rows > 0
    assert store.compact_points().rows == 0  # nothing newly closed: nothing rewritten
    _write_days(store, 9, 1)  # one more day arrives
    before = _rows(store)
    second = store.compact_points()
    assert second.until == first.until + DAY
    # from the start of the bucket holding the last mark, not from the first point
    assert second.start == first.until - first.until % CLUSTER_BUCKET_SECONDS
    assert _rows(store) == before


def test_a_failed_compaction_changes_nothing(store: Store,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    before = store.connection.execute(
        "SELECT time, entity_code, value FROM points ORDER BY rowid").fetchall()

    def fail(key: str, value: str) -> None:
        raise StoreError("disk full (injected)")

    monkeypatch.setattr(store, "set_state", fail)
    with pytest.raises(StoreError, match="injected"):
        store.compact_points()
    monkeypatch.undo()
    after = store.connection.execute(
        "SELECT time, entity_code, value FROM points ORDER BY rowid").fetchall()
    assert after == before  # rolled back: same rows in the same physical order
    assert store.get_state(CLUSTERED_UNTIL_KEY) is None
    assert store.compact_points().rows > 0  # and a later run does the work


def test_an_empty_store_has_nothing_to_compact(tmp_path: Path) -> None:
    with Store(tmp_path / "e.duckdb") as s:
        assert s.compact_points().rows == 0
        assert s.get_state(CLUSTERED_UNTIL_KEY) is None


def test_cli_store_compact_runs_the_same_step(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from netvigil.cli.store_cmd import store_group

    path = tmp_path / "c.duckdb"
    with Store(path) as s:
        _write_days(s, 0, 4)
    first = CliRunner().invoke(store_group, ["compact", "--store", str(path)])
    assert first.exit_code == 0, first.output
    with Store(path, read_only=True) as s:
        mark = s.get_state(CLUSTERED_UNTIL_KEY)
    assert mark is not None and f", {mark})" in first.output
    again = CliRunner().invoke(store_group, ["compact", "--store", str(path)])
    assert again.exit_code == 0 and "nothing newly closed" in again.output
    missing = CliRunner().invoke(store_group, ["compact", "--store", str(tmp_path / "no")])
    assert missing.exit_code != 0 and "no store at" in missing.output
