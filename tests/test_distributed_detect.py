"""Detection fan-out on a 2-worker LocalCluster: country shards give the single-process
alerts, events and detector states, on a first run and an incremental one; killing a worker
mid-job changes nothing in the result."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pytest
from click.testing import CliRunner
from distributed import Client

import netvigil.distributed.detect as detect_mod
from dask_faults import kill_a_worker_during
from netvigil.cli.main import cli
from netvigil.detect.registry import DEFAULT, get_detector
from netvigil.distributed.detect import (
    Group,
    country_groups,
    merge_shards,
    pack_shards,
    run_detection_dask,
)
from netvigil.events.runner import DetectionReport, run_detection
from netvigil.model import Entity, make_ref
from netvigil.store.duck import Store

T0 = 1_641_081_600  # 2022-01-02 00:00 UTC
STEP = 300
DAY = 86_400 // STEP
#: entity -> (level, outage start day (fraction) or None); ASes name their country
ENTITIES = {
    ("country", "KZ"): (900.0, 7.3), ("region", "KZ-75"): (300.0, 7.3),
    ("region", "KZ-11"): (200.0, None), ("asn", "9198"): (400.0, 7.3),
    ("asn", "48716"): (150.0, None), ("country", "UZ"): (500.0, None),
    ("asn", "8193"): (250.0, 7.6), ("country", "EG"): (700.0, 7.8),
    ("region", "EG-C"): (350.0, 7.8), ("asn", "64512"): (90.0, 7.4),
}
PARENT = {"9198": "KZ", "48716": "KZ", "8193": "UZ"}  # AS64512: no country (own group)
TABLES = {
    "alerts": "SELECT * FROM alerts ORDER BY ALL",
    "events": "SELECT * EXCLUDE (rules), list_sort(rules) FROM events ORDER BY ALL",
    "detector_state": "SELECT * FROM detector_state ORDER BY ALL",
}


@pytest.fixture(scope="module")
def client(dask_client: Client) -> Client:
    return dask_client  # the session's LocalCluster (tests/conftest.py)


def _values(level: float, outage: float | None, days: float, seed: int) -> np.ndarray:
    """A daily cycle with noise; an outage of 6 hours at 5 % of the level."""
    rng = np.random.default_rng(seed)
    n = int(days * DAY)
    k = np.arange(n)
    v = level * (1 + 0.1 * np.sin(2 * np.pi * k / DAY)) + rng.normal(0, level * 0.01, n)
    if outage is not None:
        lo = int(outage * DAY)
        v[lo:lo + 72] = level * 0.05
    return np.round(v)


def _write(store: Store, days: float, start_day: float = 0.0) -> None:
    store.upsert_entities([Entity(make_ref("asn", a), f"AS{a}", make_ref("country", cc))
                           for a, cc in PARENT.items()])
    lo = int(start_day * DAY)
    for i, ((etype, code), (level, outage)) in enumerate(ENTITIES.items()):
        v = _values(level, outage, days, seed=i)[lo:]
        t = T0 + STEP * np.arange(lo, lo + v.size, dtype=np.int64)
        n = v.size
        store.write_points(np.full(n, etype, object), np.full(n, code, object),
                           np.full(n, "bgp", object), t, v, source="test", step=STEP)


def _tables(path: Path) -> dict[str, list[tuple[object, ...]]]:
    with Store(path, read_only=True) as store:
        return {k: store.connection.execute(q).fetchall() for k, q in TABLES.items()}


Reference = tuple[Path, dict[str, list[tuple[object, ...]]], Path]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """8 days of input (a pristine store), the single-process tables detected on it and
    that detected store."""
    single, pristine = _pair(tmp_path_factory.mktemp("ref"), 8)
    with Store(single) as store:
        run_detection(store)
    return pristine, _tables(single), single


def _copy(src: Path, tmp_path: Path) -> Path:
    shutil.copy(src, tmp_path / "dask.duckdb")
    return tmp_path / "dask.duckdb"


def _pair(tmp_path: Path, days: float) -> tuple[Path, Path]:
    single, sharded = tmp_path / "single.duckdb", tmp_path / "dask.duckdb"
    with Store(single) as store:
        _write(store, days)
    shutil.copy(single, sharded)
    return single, sharded


def test_a_merge_replaces_the_shards_states_and_no_other(reference: Reference,
                                                         tmp_path: Path) -> None:
    """The shard's states of the method replace the store's for its entities: a changed
    state is updated, one the shard does not have is deleted; other entities' states and
    another method's state of the same entity stay as they were."""
    method = get_detector(DEFAULT).method
    store_path = _copy(reference[2], tmp_path)
    with Store(store_path) as store:
        store.connection.execute(
            "INSERT INTO detector_state SELECT 'other.method', entity_type, entity_code,"
            " signal, config, cursor, state FROM detector_state WHERE entity_code = 'KZ'")
        before = store.connection.execute(TABLES["detector_state"]).fetchall()
    shard = tmp_path / "shard.duckdb"
    con = duckdb.connect(str(shard))
    con.execute(f"ATTACH '{store_path}' AS s (READ_ONLY)")
    con.execute("CREATE TABLE shard_entities AS SELECT * FROM (VALUES ('country', 'KZ'),"
                " ('asn', '9198')) t(entity_type, entity_code)")
    for table in ("alerts", "events"):
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM s.{table} WHERE"
                    " (entity_type, entity_code) IN (SELECT * FROM shard_entities)")
    con.execute("CREATE TABLE detector_state AS SELECT * FROM s.detector_state WHERE"
                f" method = '{method}' AND entity_code = 'KZ'")  # AS9198's left out
    con.execute("UPDATE detector_state SET cursor = cursor + 1")
    cols = list(DetectionReport.__dataclass_fields__)
    con.execute(f"CREATE TABLE shard_report ({', '.join(c + ' BIGINT' for c in cols)})")
    con.execute(f"INSERT INTO shard_report VALUES ({', '.join('0' for _ in cols)})")
    con.execute("DETACH s")
    con.close()
    with Store(store_path) as store:
        merge_shards(store, [shard], method)
        after = store.connection.execute(TABLES["detector_state"]).fetchall()
    # columns: method, entity_type, entity_code, signal, config, cursor, state
    want = sorted([r[:5] + (r[5] + 1,) + r[6:] if (r[0], r[2]) == (method, "KZ") else r
                   for r in before if (r[0], r[2]) != (method, "9198")])
    assert after == want
    assert any(r[0] == "other.method" and r[2] == "KZ" for r in after)
    assert any(r[2] == "8193" for r in after) and not any(
        r[0] == method and r[2] == "9198" for r in after)


def test_country_groups_keep_regions_and_ases_with_their_country(
        reference: Reference) -> None:
    single = reference[0]
    with Store(single, read_only=True) as store:
        groups = {g.root.fqid: sorted(m.fqid for m in g.members) for g in
                  country_groups(store)}
    assert groups["country/KZ"] == ["asn/48716", "asn/9198", "country/KZ", "region/KZ-11",
                                    "region/KZ-75"]
    assert groups["country/UZ"] == ["asn/8193", "country/UZ"]
    assert groups["asn/64512"] == ["asn/64512"]
    with Store(single, read_only=True) as store:
        shards = pack_shards(country_groups(store), 2)
    assert len(shards) == 2 and sorted(e.fqid for s in shards for e in s) == sorted(
        e for g in groups.values() for e in g)
    kz = {e.fqid for s in shards for e in s if e.fqid in groups["country/KZ"]}
    assert any(kz <= {e.fqid for e in s} for s in shards)  # never split


def test_shards_balance_the_points_to_read_not_the_entity_count() -> None:
    def group(code: str, n: int, cost: int) -> Group:
        return Group(make_ref("country", code),
                     [make_ref("country", code)] + [make_ref("region", f"{code}-{i}")
                                                    for i in range(n - 1)], cost)

    # one big country with 1 entity, three small ones with 4 entities each
    big, *small = [group("KZ", 1, 900), group("UZ", 4, 300), group("EG", 4, 300),
                   group("IR", 4, 300)]
    shards = pack_shards([*small, big], 2)
    assert [len(s) for s in shards] in ([1, 12], [12, 1])  # by cost, not entity count
    assert pack_shards([group("KZ", 3, 5), group("UZ", 1, 4), group("EG", 1, 3),
                        group("IR", 1, 3)], 2)[0][0].code == "KZ"  # loads 5+3, 4+3


def test_sharded_detection_equals_single_process_first_and_incremental(
        tmp_path: Path, client: Client,
        reference: Reference) -> None:
    single, sharded = tmp_path / "single.duckdb", _copy(reference[0], tmp_path)
    shutil.copy(reference[2], single)  # input + one single-process run
    first = run_detection_dask(client, sharded, detector=DEFAULT, shards=2)
    want = reference[1]
    assert len(want["alerts"]) > 0 and len(want["events"]) >= 3
    assert _tables(sharded) == want
    assert first.shards == 2 and first.report.series_recomputed == len(ENTITIES)
    # every series read whole, plus 1 per series: KZ's group (5 series) is the costliest
    assert sum(first.costs) == first.report.points_read + len(ENTITIES)
    assert first.largest_group == 5 * (8 * DAY + 1) and max(first.costs) >= 5 * 8 * DAY
    # one more day on both: states resume per shard (no series recomputed)
    for path in (single, sharded):
        with Store(path) as store:
            _write(store, 9, start_day=8)
    with Store(sharded, read_only=True) as store:  # shards cost the new day's points
        costs = {g.root.fqid: g.cost for g in country_groups(
            store, get_detector(DEFAULT).method)}
    assert costs["country/KZ"] == 5 * (DAY + 1) and costs["asn/64512"] == DAY + 1
    with Store(single) as store:
        run_detection(store)
    again = run_detection_dask(client, sharded, detector=DEFAULT, shards=2)
    assert again.report.series_recomputed == 0
    assert again.report.series_updated == len(ENTITIES)
    assert _tables(sharded) == _tables(single)


def test_cli_detect_engine_dask_on_a_scheduler_address(
        tmp_path: Path, client: Client,
        reference: Reference) -> None:
    sharded = _copy(reference[0], tmp_path)
    address = client.scheduler.address
    res = CliRunner().invoke(cli, ["detect", "--store", str(sharded), "--engine", "dask",
                                   "--scheduler", address, "--shards", "3"])
    assert res.exit_code == 0, res.output
    assert "dask: 3 shard(s) of 4 country group(s)" in res.output
    assert "detect shards: 3/3 finished, " in res.output  # progress, on stderr
    assert _tables(sharded) == reference[1]
    bad = CliRunner().invoke(cli, ["detect", "--store", str(sharded), "--engine", "dask",
                                   "--scheduler", "local:0"])
    assert bad.exit_code == 1 and "local:N needs N >= 1" in bad.output


def test_a_worker_killed_mid_job_changes_nothing(
        tmp_path: Path, client: Client,
        reference: Reference) -> None:
    sharded = _copy(reference[0], tmp_path)
    _, moves = kill_a_worker_during(client, lambda: run_detection_dask(
        client, sharded, detector=DEFAULT, shards=4), "detect-shard-")
    # the scheduler saw the killed worker's task start twice (lost with it, then rerun)
    from_processing = [m[1] for m in moves if m[0] == "processing"]
    assert len(from_processing) >= 2 and "memory" in from_processing, moves
    assert _tables(sharded) == reference[1]


def _periodic(dask_worker: object) -> tuple[list[str], float]:
    """A worker's profiler callbacks and its event-loop tick period (ms)."""
    cbs = dask_worker.periodic_callbacks  # type: ignore[attr-defined]
    return sorted(k for k in cbs if k.startswith("profile")), cbs["tick"].callback_time


def test_local_clusters_run_workers_with_less_periodic_work(client: Client) -> None:
    """engine.CLUSTER_CONFIG reaches the spawned workers: Dask's default runs the
    profiler's two periodic callbacks and a 20 ms tick on every worker (the session cluster
    of tests/conftest.py, made without it, shows them); ours none and 200 ms."""
    from netvigil.distributed.engine import dask_client

    default = client.run(_periodic).values()
    assert list(default) == [(["profile", "profile-cycle"], 20)] * 2
    with dask_client("local:1") as ours:
        assert list(ours.run(_periodic).values()) == [([], 200)]


def test_an_interrupted_run_resumes_the_shards_it_finished(
        tmp_path: Path, client: Client, reference: Reference,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Deliverable 5 for detection: the driver stopped before its merge (here: the merge
    raises) leaves the store as it was and the finished shards' files; the next run on the
    unchanged store submits only the shard whose file is missing, and the result equals
    the single-process run. A write to the store in between makes every shard run again."""
    sharded = _copy(reference[0], tmp_path)

    def stopped(*_: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(detect_mod, "merge_shards", stopped)
        with pytest.raises(KeyboardInterrupt):
            run_detection_dask(client, sharded, detector=DEFAULT, shards=3)
    (work,) = tmp_path.glob(".netvigil-detect-*")
    files = sorted(work.glob("shard-*.duckdb"))
    assert len(files) == 3
    with Store(sharded, read_only=True) as store:  # nothing merged
        assert store.connection.execute("SELECT count(*) FROM alerts").fetchone() == (0,)
    files[1].unlink()  # a shard the interrupted run had not finished
    kept = {f: f.stat().st_mtime_ns for f in (files[0], files[2])}
    submitted: list[str] = []
    real = client.submit

    def spy(fn: object, *args: object, **kw: object) -> object:
        submitted.append(str(args[1]))
        return real(fn, *args, **kw)

    with monkeypatch.context() as m:
        m.setattr(detect_mod, "merge_shards", _checked(kept, detect_mod.merge_shards))
        m.setattr(client, "submit", spy)
        again = run_detection_dask(client, sharded, detector=DEFAULT, shards=3)
    assert submitted == [str(files[1])] and again.resumed == 2 and again.shards == 3
    assert _tables(sharded) == reference[1]
    assert again.report.series_recomputed == len(ENTITIES)  # reports read back from files
    assert not list(tmp_path.glob(".netvigil-detect-*"))  # removed after the merge
    # interrupted again, then the store changes: nothing of the stale folder is reused
    (tmp_path / "b").mkdir()
    fresh = _copy(reference[0], tmp_path / "b")
    with monkeypatch.context() as m:
        m.setattr(detect_mod, "merge_shards", stopped)
        with pytest.raises(KeyboardInterrupt):
            run_detection_dask(client, fresh, detector=DEFAULT, shards=3)
    with Store(fresh) as store:
        _write(store, 9, start_day=8)
    method = get_detector(DEFAULT).method
    other = fresh.parent / (detect_mod._work_stem(fresh.parent / "other.duckdb", method)
                            + "0" * 16)
    other.mkdir()  # an interrupted run's folder of another store beside this one
    third = run_detection_dask(client, fresh, detector=DEFAULT, shards=3)
    assert third.resumed == 0
    assert list(fresh.parent.glob(".netvigil-detect-*")) == [other]  # the stale one went


def _checked(kept: dict[Path, int], merge: Callable[..., object]) -> Callable[..., object]:
    """``merge_shards`` that first checks the finished shards' files were not rewritten."""
    def run(*args: object) -> object:
        assert {f: f.stat().st_mtime_ns for f in kept} == kept
        return merge(*args)
    return run


def test_progress_lines_are_throttled_and_count_resumed_tasks() -> None:
    """A backfill's progress (:func:`netvigil.distributed.engine.report_progress`): the
    first task's line, then at most one per interval, and always the last; resumed tasks
    counted in the total."""
    from netvigil.distributed.engine import _Progress

    lines: list[str] = []
    p = _Progress("detect shards", 5, 2, lines.append, every=3600.0)
    for _ in range(5):
        p(None)
    assert len(lines) == 2
    assert lines[0].startswith("detect shards: 3/7 finished (2 resumed), ")
    assert "left" in lines[0] and "left" not in lines[1]
    assert lines[1].startswith("detect shards: 7/7 finished (2 resumed), ")
    every = _Progress("ooni chunks", 3, 0, lines.append, every=0.0)
    for _ in range(3):
        every(None)
    assert [x.split(",")[0] for x in lines[2:]] == [f"ooni chunks: {k}/3 finished"
                                                     for k in (1, 2, 3)]
    failed = type("Lost", (), {"status": "error"})()
    every(failed)  # a failed or cancelled task is no progress
    assert len(lines) == 5
