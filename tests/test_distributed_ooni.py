"""``netvigil ooni import --engine dask`` on a 2-worker LocalCluster: the same store as the
single-process import (points, entities, the imports row, the printed summary) on the shared
OONI fixtures and a synthetic bucket; the same first error under ``fail``; a re-run resumes
without judging finished chunks again."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from distributed import Client

from netvigil.cli.main import cli
from netvigil.distributed.ooni import read_measurements_dask
from netvigil.sources.ooni.facts import FactBuilder
from netvigil.sources.ooni.importer import read_measurements
from netvigil.store import Store
from test_ooni_import import BLACKOUT, BLOCK, bucket, telegram

FIX = Path(__file__).parent / "fixtures" / "ooni"
QUERIES = {
    "points": "SELECT entity_type, entity_code, signal, time, value FROM points ORDER BY ALL",
    "series": "SELECT * FROM series ORDER BY ALL",
    "entities": "SELECT * FROM entities ORDER BY ALL",
    "imports": "SELECT * EXCLUDE (id, imported_at) FROM imports ORDER BY ALL",
}


@pytest.fixture(scope="module")
def client(dask_client: Client) -> Client:
    return dask_client  # the session's LocalCluster (tests/conftest.py)


def _run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def _tables(path: Path) -> dict[str, list[tuple[object, ...]]]:
    with Store(path, read_only=True) as store:
        return {k: store.connection.execute(q).fetchall() for k, q in QUERIES.items()}


def _both(tmp_path: Path, client: Client, *inputs: str | Path,
          chunk: int = 3) -> tuple[Result, Result]:
    one = _run("ooni", "import", *inputs, "--store", tmp_path / "one.duckdb")
    many = _run("ooni", "import", *inputs, "--store", tmp_path / "dask.duckdb", "--engine",
                "dask", "--scheduler", client.scheduler.address, "--chunk-files", str(chunk))
    return one, many


def test_shared_fixtures_give_the_single_process_store(tmp_path: Path, client: Client) -> None:
    # one file per task: report1.json and its pretty copy are judged on different tasks
    one, many = _both(tmp_path, client, FIX, "--on-error", "skip", chunk=1)
    assert one.exit_code == 0 and many.exit_code == 0, many.output
    assert "1 duplicate(s)" in one.stdout
    assert many.stdout == one.stdout
    assert _tables(tmp_path / "dask.duckdb") == _tables(tmp_path / "one.duckdb")
    assert not list(tmp_path.glob(".dask.duckdb.work/*"))  # chunks removed once stored


def test_synthetic_bucket_gives_the_single_process_store(tmp_path: Path,
                                                         client: Client) -> None:
    hours = [h for h in range(26) if h not in BLACKOUT]
    bucket(tmp_path / "b", [telegram(h, asn, asn == 9198 and h in BLOCK, k)
                            for h in hours for asn in (9198, 29355) for k in range(2)])
    one, many = _both(tmp_path, client, "--dir", tmp_path / "b")
    assert one.exit_code == 0 and many.exit_code == 0, many.output
    want = _tables(tmp_path / "one.duckdb")
    assert len(want["points"]) > 100
    assert _tables(tmp_path / "dask.duckdb") == want


def test_fail_policy_raises_the_first_error_in_file_order(tmp_path: Path,
                                                          client: Client) -> None:
    bad = [tmp_path / "bad1.jsonl", tmp_path / "bad2.jsonl"]  # the fixtures all parse now
    for f in bad:
        f.write_text("{}\nnot json\n")
    one, many = _both(tmp_path, client, FIX, *bad)
    assert one.exit_code == many.exit_code == 1
    assert many.stderr == one.stderr and "bad1.jsonl:1" in many.stderr
    assert not (tmp_path / "dask.duckdb").exists()


def test_a_rerun_judges_only_the_chunks_not_done(tmp_path: Path, client: Client) -> None:
    paths = sorted(p for p in FIX.iterdir() if p.is_file() and p.suffix != ".md")
    work = tmp_path / "work"
    b1, r1, resumed = read_measurements_dask(client, paths, "skip", work, per_chunk=4)
    chunk_files = sorted(work.iterdir())
    assert resumed == 0 and len(chunk_files) == -(-len(paths) // 4)
    # "interrupted": the last chunk never finished
    chunk_files[-1].unlink()
    stamps = {p: p.stat().st_mtime_ns for p in chunk_files[:-1]}
    b2, r2, resumed = read_measurements_dask(client, paths, "skip", work, per_chunk=4)
    assert resumed == len(chunk_files) - 1
    assert {p: p.stat().st_mtime_ns for p in chunk_files[:-1]} == stamps  # not rewritten
    ref = FactBuilder()
    want = read_measurements(paths, "skip", ref)
    for b, r in ((b1, r1), (b2, r2)):
        assert r.text() == want.text() and r.files == want.files
        assert r.malformed == want.malformed
        assert (dict(b.counts), dict(b.volume), b.networks) == (
            dict(ref.counts), dict(ref.volume), ref.networks)
