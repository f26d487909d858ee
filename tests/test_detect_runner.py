"""Runner (``netvigil.events.runner``) on a real DuckDB store: idempotence, partial
updates, shards, rollback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from netvigil.events.runner import in_shard, run_detection
from netvigil.model import Entity, Series, make_ref
from test_detect_support import KZ, T0, series

DAY = 86400 // 600
AS9198 = make_ref("asn", "9198")


def outage(signal: str, step: int = 600, entity: Any = KZ) -> Series:
    per_day = 86400 // step
    values = np.r_[np.full(2 * per_day, 1000.0), np.zeros(per_day // 4),
                   np.full(per_day, 1000.0)]
    return series(signal, values, step=step, entity=entity)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Any]:
    from netvigil.store.duck import Store

    with Store(tmp_path / "nv.duckdb") as s:
        yield s


def fill(store: Any) -> None:
    store.write_series(outage("probing"), source="test")
    store.write_series(outage("bgp", step=300), source="test")
    store.write_series(series("probing-loss", np.full(3 * DAY, 2.0)), source="test")
    store.write_series(series("probing", np.full(3 * DAY, 500.0), entity=AS9198), source="test")


def snapshot(store: Any) -> tuple[list[Any], list[Any]]:
    return store.read_alerts(), store.read_events()


def test_first_run_detects_and_builds_events(store: Any) -> None:
    fill(store)
    rep = run_detection(store)
    assert (rep.series_examined, rep.series_recomputed, rep.series_skipped) == (4, 3, 1)
    assert rep.series_unchanged == 0 and rep.entities_touched == 2
    assert rep.alerts_written == 4 and rep.events_written == 1
    (ev,) = store.read_events(KZ)
    assert ev.kind.value == "routing" and ev.entity_name == "Kazakhstan"  # from the entity registry
    assert {s.signal for s in ev.signals} == {"bgp", "probing"}
    assert ev.start == T0 + 2 * 86400 and ev.end == T0 + 2 * 86400 + 6 * 3600


def test_detect_is_idempotent(store: Any) -> None:
    fill(store)
    run_detection(store)
    before = snapshot(store)
    rep = run_detection(store)
    assert (rep.series_recomputed, rep.series_updated) == (0, 0)
    assert (rep.series_unchanged, rep.alerts_written, rep.points_read) == (3, 0, 0)
    assert (rep.entities_touched, rep.events_written) == (0, 0)
    assert snapshot(store) == before


def test_only_changed_series_are_recomputed(store: Any) -> None:
    fill(store)
    run_detection(store)
    kz_events = store.read_events(KZ)
    longer = np.r_[np.full(3 * DAY, 500.0), np.full(DAY, 510.0)]
    store.write_series(series("probing", longer, entity=AS9198), source="test")
    rep = run_detection(store)
    assert (rep.series_updated, rep.series_recomputed, rep.series_unchanged) == (1, 0, 2)
    assert rep.points_read == DAY and rep.entities_touched == 0  # no alert, no open event
    assert store.read_events(KZ) == kz_events


def test_entity_filter_limits_the_run(store: Any) -> None:
    fill(store)
    rep = run_detection(store, AS9198)
    assert (rep.series_examined, rep.series_recomputed) == (1, 1)
    assert store.read_alerts(KZ) == []


def test_shards_partition_the_entities(store: Any) -> None:
    fill(store)
    reps = [run_detection(store, shard=(i, 3)) for i in range(3)]
    assert sum(r.series_examined for r in reps) == 4
    assert sum(r.series_recomputed for r in reps) == 3
    assert sum(in_shard(KZ, (i, 3)) for i in range(3)) == 1


def test_entity_name_comes_from_the_store(store: Any) -> None:
    store.upsert_entities([Entity(KZ, "Kazakstan (stored)")])
    fill(store)
    run_detection(store)
    assert store.read_events(KZ)[0].entity_name == "Kazakstan (stored)"


def test_a_failure_leaves_the_entity_and_its_state_unchanged(
        store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Alerts are appended and states written before events are built; a failure while
    building events rolls all of it back."""
    fill(store)
    import netvigil.events.runner as runner

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(runner, "build_events", broken)
    with pytest.raises(RuntimeError):
        run_detection(store, KZ)
    assert store.read_alerts(KZ) == []
    assert store.connection.execute("SELECT count(*) FROM detector_state").fetchone() == (0,)
    monkeypatch.undo()
    assert run_detection(store, KZ).series_recomputed == 2
    assert len(store.read_events(KZ)) == 1
