"""``netvigil series import --engine dask`` on the session's 2-worker LocalCluster: the same
store as the single-process import of the same files (points, series, entities, imports rows,
the printed summaries and skip reports) for CSV and IODA JSON files with bad lines under
``skip``; the same first error and nothing written under ``fail``; a re-run validates only
the files not done."""

from __future__ import annotations

import copy
import gzip
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from distributed import Client

from dask_faults import kill_a_worker_during
from netvigil.cli.main import cli
from netvigil.distributed.dataset import DatasetWriter
from netvigil.distributed.series import import_files_dask, unit_name, work_dir
from netvigil.pipeline import Pipeline
from netvigil.store import Store

FIX = Path(__file__).parent / "fixtures" / "series"
HEADER = "time,entity_type,entity_code,signal,value,entity_name,parent\n"
T0 = 1_641_340_800  # 2022-01-05 00:00 UTC, the fixtures' day
QUERIES = {
    "points": "SELECT entity_type, entity_code, signal, time, value FROM points ORDER BY ALL",
    "series": "SELECT * FROM series ORDER BY ALL",
    "entities": "SELECT * FROM entities ORDER BY ALL",
    "imports": "SELECT * EXCLUDE (id, imported_at) FROM imports ORDER BY id",
}


@pytest.fixture(scope="module")
def client(dask_client: Client) -> Client:
    return dask_client  # the session's LocalCluster (tests/conftest.py)


def _run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def _tables(path: Path) -> dict[str, list[tuple[object, ...]]]:
    with Store(path, read_only=True) as store:
        return {k: store.connection.execute(q).fetchall() for k, q in QUERIES.items()}


def _csv(path: Path, rows: list[str]) -> Path:
    path.write_text(HEADER + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def _inputs(d: Path) -> list[Path]:
    """Three CSV files (one gzipped, one with bad lines of several rules, one updating the
    first's points) and the IODA fixture with two series more: one repeating a series
    with one changed value, one with a bad step."""
    d.mkdir()
    a = _csv(d / "a.csv", [f"{T0 + 300 * i},country,KZ,probing,{100 + i},Kazakhstan,"
                           for i in range(40)] +
             [f"{T0 + 300 * i},asn,AS9198,bgp,{50 + i % 3},Kazakh Telecom,KZ"
              for i in range(40)])
    bad = _csv(d / "bad.csv", [
        f"{T0},region,KZ-75,probing,7,Almaty,",
        "yesterday,country,KZ,probing,1,,",  # line 3: bad time
        f"{T0 + 300},country,KZ,probing,abc,,",  # line 4: non-numeric value
        f"{T0 + 600},country,ZZ,probing,1,,",  # line 5: unknown entity code
        f"{T0 + 900},asn,9198,bgp,-4,,",  # line 6: negative count
        f"{T0},region,KZ-75,probing,8,,",  # line 7: conflicting duplicate of line 2
        f"{T0 + 300},region,KZ-75,probing,9,,"])
    upd = d / "upd.csv.gz"
    upd.write_bytes(gzip.compress((HEADER + "".join(
        f"{T0 + 300 * i},country,KZ,probing,{100 + i + (i % 2)},,\n" for i in range(20, 60))
    ).encode()))
    doc = json.loads((FIX / "ioda_signals_raw_kz.json").read_text(encoding="utf-8"))
    again = copy.deepcopy(doc["data"][0][0])
    again["values"][5] = 1.5  # the same series repeated with one other value
    doc["data"].append([again])
    broken = copy.deepcopy(doc["data"][0][1])
    broken["step"] = "five minutes"
    doc["data"].append([broken])
    ioda = d / "twice.json"
    ioda.write_text(json.dumps(doc), encoding="utf-8")
    return [a, bad, upd, ioda]


def _both(tmp_path: Path, client: Client, files: list[Path],
          *opts: str) -> tuple[Result, Result]:
    one = _run("series", "import", *files, *opts, "--store", tmp_path / "one.duckdb")
    many = _run("series", "import", *files, *opts, "--store", tmp_path / "dask.duckdb",
                "--engine", "dask", "--scheduler", client.scheduler.address)
    return one, many


def test_several_files_under_skip_give_the_single_process_store(tmp_path: Path,
                                                                client: Client) -> None:
    files = _inputs(tmp_path / "in")
    one, many = _both(tmp_path, client, files, "--on-error", "skip")
    assert one.exit_code == 0 and many.exit_code == 0, many.output
    # the rules fired (on both engines: the outputs are compared next)
    for want in ("bad time: 1 (first at 3)", "non-numeric value: 1 (first at 4)",
                 "unknown entity code: 1 (first at 5)", "negative count: 1 (first at 6)",
                 "conflicting duplicate: 1 (first at 7)", "bad series: 1 (first at data[",
                 "conflicting duplicate: 1 (first at ?)"):
        assert want in one.stderr, one.stderr
    assert "40 rows read, 40 written (20 inserted, 10 updated, 10 unchanged)" in one.stdout
    assert many.stdout == one.stdout
    # after the progress line(s) and "dask: ..."
    assert [x for x in many.stderr.splitlines()
            if not x.startswith(("series files validated: ", "dask: "))] == \
        one.stderr.splitlines()
    want = _tables(tmp_path / "one.duckdb")
    assert len(want["points"]) > 250 and len(want["imports"]) == len(files)
    assert _tables(tmp_path / "dask.duckdb") == want
    assert not list(tmp_path.glob(".dask.duckdb.work/*"))  # parts removed once stored


def test_fail_raises_the_first_error_in_file_order_and_writes_nothing(
        tmp_path: Path, client: Client) -> None:
    files = _inputs(tmp_path / "in")
    # a store with something in it already
    assert _run("series", "import", FIX / "kz_long.csv", "--store",
                tmp_path / "one.duckdb").exit_code == 0
    shutil.copy(tmp_path / "one.duckdb", tmp_path / "dask.duckdb")
    before = _tables(tmp_path / "one.duckdb")
    later_bad = tmp_path / "in" / "late.csv"
    later_bad.write_text(HEADER + f"{T0},country,KZ,bgp,-,,\n", encoding="utf-8")
    one, many = _both(tmp_path, client, [files[0], files[1], later_bad])
    assert "Traceback" not in one.output + many.output
    assert one.exit_code == many.exit_code == 1
    assert f"error: {files[1]}:3: bad time:" in one.stderr, one.stderr
    assert many.stderr.splitlines()[-1] == one.stderr.splitlines()[-1]
    assert _tables(tmp_path / "one.duckdb") == before
    assert _tables(tmp_path / "dask.duckdb") == before  # file a (valid) not written either


def test_a_rerun_validates_only_the_files_not_done(tmp_path: Path, client: Client) -> None:
    files = [p for i, p in enumerate(_inputs(tmp_path / "in")) if i in (0, 3)]
    work = work_dir(tmp_path / "work", files, None, "skip")
    units = [unit_name(i, p, None, "skip") for i, p in enumerate(files)]
    with Store(tmp_path / "first.duckdb") as store:
        first = import_files_dask(client, store, files, None, "skip", work,
                                  sink=Pipeline(store))
    assert first.resumed == 0
    writer = DatasetWriter(work)
    assert all(writer.done(u) for u in units)
    parts = {f: (work / f).stat().st_mtime_ns
             for u in units for f in writer.manifest(u).files}  # type: ignore[union-attr]
    assert parts
    # an interrupted run: the IODA file's manifest was never written
    writer.manifest_path(units[1]).unlink()
    with Store(tmp_path / "second.duckdb") as store:
        second = import_files_dask(client, store, files, None, "skip", work,
                                   sink=Pipeline(store))
    assert second.resumed == len(files) - 1
    assert [s.text() for s in second.summaries] == [s.text() for s in first.summaries]
    rewritten = {f for f, t in parts.items() if (work / f).stat().st_mtime_ns != t}
    assert rewritten and all(f.startswith(units[1] + "/") for f in rewritten)
    assert _tables(tmp_path / "second.duckdb") == _tables(tmp_path / "first.duckdb")


def test_a_worker_killed_mid_validation_changes_nothing(tmp_path: Path, client: Client) -> None:
    """Deliverable 5 for series import: SIGKILL the worker validating a file; Dask runs the
    unit again on the other worker (the scheduler's story shows it processing twice) and
    the store equals the single-process import of the same files."""
    ccs = ["KZ", "UZ", "KG", "TJ", "TM", "EG", "IR", "IQ"]
    files = [_csv(tmp_path / f"big{j}.csv",
                  [f"{T0 + 300 * i},country,{cc},probing,{(i * 7 + j) % 500},,"
                   for cc in ccs for i in range(25_000)]) for j in range(2)]
    one = _run("series", "import", *files, "--store", tmp_path / "one.duckdb")
    assert one.exit_code == 0, one.output

    def job() -> object:  # two files of 200,000 rows: one validation task each
        with Store(tmp_path / "dask.duckdb") as store:
            return import_files_dask(client, store, files, None, "fail", tmp_path / "work",
                                     sink=Pipeline(store))

    _, moves = kill_a_worker_during(client, job, "series-")
    assert sum(1 for m in moves if m[1] == "processing") >= 2, moves
    assert ("processing", "memory") in moves, moves
    assert _tables(tmp_path / "dask.duckdb") == _tables(tmp_path / "one.duckdb")
