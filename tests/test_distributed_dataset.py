"""Partitioned point datasets: the pipeline's own points through Parquet partitions give the
store exactly what the pipeline writes directly; partitions are atomic and idempotent."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from netvigil.cli.main import cli
from netvigil.distributed.dataset import (
    DatasetWriter,
    PartitionSink,
    dataset_parts,
    import_dataset,
)
from netvigil.geo import GeoLookup
from netvigil.model.errors import InputError
from netvigil.model.facts import PointBatch
from netvigil.pipeline import Pipeline
from netvigil.sources.bgp.ingest import BgpIngester, discover
from netvigil.sources.bgp.visibility import VisibilityConfig
from netvigil.store.duck import Store
from test_bgp_ingest import CFG, _write_archive

MRT = Path(__file__).parent / "fixtures" / "mrt"
T0 = 1_641_340_800  # 2022-01-05 00:00 UTC

POINTS_SQL = ("SELECT entity_type, entity_code, signal, time, value FROM points"
              " ORDER BY ALL")
SERIES_SQL = ("SELECT entity_type, entity_code, signal, step, origin, declared_step,"
              " first_time, last_time, n_points FROM series ORDER BY ALL")


@pytest.fixture(scope="module")
def geo() -> GeoLookup:
    return GeoLookup.default()


def _rows(store: Store, sql: str) -> list[tuple[object, ...]]:
    return store.connection.execute(sql).fetchall()


def _batch(codes: list[str], times: list[int], values: list[float], *, signal: str = "x",
           source: str = "csv:a/b.csv", step: int | None = 300) -> PointBatch:
    n = len(times)
    return PointBatch(np.full(n, "country", dtype=object), np.asarray(codes, dtype=object),
                      np.full(n, signal, dtype=object), np.asarray(times, dtype=np.int64),
                      np.asarray(values, dtype=np.float64), source, step)


def _digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_bgp_archives_through_partitions_equal_the_direct_pipeline(tmp_path: Path,
                                                                    geo: GeoLookup) -> None:
    """Real 2002 RIS updates and a synthetic 3-bin, 2-collector archive: the stored points
    and series of (ingest -> PartitionSink -> dataset -> import) equal the direct ingest's,
    values included."""
    files = _write_archive(tmp_path / "archive")
    real = discover([MRT / "updates.20020722.2238.gz"], None, "rrc00")
    cfg_real = VisibilityConfig(ff_v4=1, ff_v6=1)
    with Store(tmp_path / "direct.duckdb") as direct:
        BgpIngester(Pipeline(direct, geo), CFG).run(discover(files, None, None))
        BgpIngester(Pipeline(direct, geo), cfg_real).run(real)
        want_pts, want_ser = _rows(direct, POINTS_SQL), _rows(direct, SERIES_SQL)
    writer = DatasetWriter(tmp_path / "ds")
    for unit, cfg, archives in (("a-synthetic", CFG, discover(files, None, None)),
                                ("b-ris2002", cfg_real, real)):
        sink = PartitionSink(writer, unit, geo)
        BgpIngester(sink, cfg).run(archives)
        man = sink.commit()
        assert man.rows > 0 and writer.done(unit)
    # hive layout: source / date / hour of the point times
    rels = sorted(p.relative_to(tmp_path / "ds").as_posix() for _s, p in dataset_parts(
        tmp_path / "ds"))
    assert "source=bgp/date=2022-01-05/hour=00/part-a-synthetic.parquet" in rels
    assert "source=bgp/date=2002-07-22/hour=22/part-b-ris2002.parquet" in rels
    with Store(tmp_path / "loaded.duckdb") as loaded:
        rep = import_dataset(loaded, tmp_path / "ds")
        assert rep.inserted == len(want_pts) > 100
        assert _rows(loaded, POINTS_SQL) == want_pts
        assert _rows(loaded, SERIES_SQL) == want_ser
        again = import_dataset(loaded, tmp_path / "ds")  # idempotent load
        assert (again.inserted, again.updated, again.unchanged) == (0, 0, len(want_pts))


def test_partitions_split_by_hour_keep_missing_and_last_repeated_value(
        tmp_path: Path) -> None:
    writer = DatasetWriter(tmp_path / "ds")
    times = [T0, T0 + 300, T0 + 3600, T0 + 7200 + 300]
    first = _batch(["KZ"] * 4, times, [1.0, np.nan, 3.0, 4.0])
    fix = _batch(["KZ"], [T0 + 3600], [30.0])  # a later batch corrects one bin
    writer.write_unit("u1", [first, fix])
    hours = sorted(p.parent.name for _s, p in dataset_parts(tmp_path / "ds"))
    assert hours == ["hour=00", "hour=01", "hour=02"]
    [(source, _p), *_] = dataset_parts(tmp_path / "ds")
    assert source == "csv:a/b.csv"  # quoted in the path, read back as it was
    with Store(tmp_path / "s.duckdb") as store:
        import_dataset(store, tmp_path / "ds")
        got = store.connection.execute(
            "SELECT time, value FROM points ORDER BY time").fetchall()
        assert got == [(T0, 1.0), (T0 + 300, None), (T0 + 3600, 30.0), (T0 + 7500, 4.0)]
        row = store.connection.execute("SELECT step, declared_step, source FROM series"
                                       ).fetchone()
        assert row == (300, 300, "csv:a/b.csv")
    res = CliRunner().invoke(cli, ["store", "import-parquet", str(tmp_path / "ds"),
                                   "--store", str(tmp_path / "cli.duckdb")])
    assert res.exit_code == 0, res.output
    assert "parts 3, rows 5: inserted 4, updated 0, unchanged 0" in res.output
    with Store(tmp_path / "cli.duckdb") as a, Store(tmp_path / "s.duckdb") as b:
        assert _rows(a, POINTS_SQL) == _rows(b, POINTS_SQL)


def test_rewriting_a_unit_replaces_its_partitions_exactly(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    writer = DatasetWriter(root)
    b = _batch(["KZ", "UZ"], [T0, T0 + 3600], [1.0, 2.0])
    writer.write_unit("u1", [b])
    before = _digests(root)
    writer.write_unit("u1", [b])
    assert _digests(root) == before  # same bytes, no temporary file left behind
    writer.write_unit("u1", [_batch(["KZ"], [T0], [5.0])])  # this run no longer has hour 01
    assert sorted(p.parent.name for _s, p in dataset_parts(root)) == ["hour=00"]
    assert not [p for p in root.rglob("*.tmp")]


def test_a_unit_without_manifest_or_with_a_missing_part_is_not_done(tmp_path: Path) -> None:
    writer = DatasetWriter(tmp_path / "ds")
    assert not writer.done("u1")
    man = writer.write_unit("u1", [_batch(["KZ"], [T0], [1.0])])
    assert writer.done("u1")
    (tmp_path / "ds" / next(iter(man.files))).unlink()
    assert not writer.done("u1")
    with pytest.raises(ValueError, match="unit name"):
        writer.write_unit("../evil", [])


def test_a_stray_file_in_the_layout_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "ds" / "source=x" / "date=2022-1-5" / "hour=00" / "part-a.parquet"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"")
    with pytest.raises(InputError, match="not a dataset part"):
        dataset_parts(tmp_path / "ds")
