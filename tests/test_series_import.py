"""``netvigil series import`` through the CLI: happy paths, malformed input, error policies."""

from __future__ import annotations

import gzip
import json
import math
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netvigil.cli.main import cli
from netvigil.model import make_ref
from netvigil.pipeline import Pipeline, point_batch
from netvigil.series import csv_format
from netvigil.store import Store, migrations

FIX = Path(__file__).parent / "fixtures" / "series"
T0 = 1_641_340_800
HEADER = "time,entity_type,entity_code,signal,value\n"
GOOD = HEADER + "2022-01-05T00:00:00Z,country,KZ,bgp,10\n2022-01-05T00:05:00Z,country,KZ,bgp,11\n"


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store" / "nv.duckdb"


def series_list(store_path: Path) -> str:
    res = run("series", "list", "--format", "json", "--store", store_path)
    assert res.exit_code == 0, res.output
    return res.output


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_csv_fixture_import_canonicalises_codes_and_keeps_missing(store_path: Path) -> None:
    res = run("series", "import", FIX / "kz_long.csv", "--store", store_path)
    assert res.exit_code == 0, res.output
    assert "7 rows read" in res.output and "3 series touched" in res.output
    with Store(store_path) as s:
        probing = s.read_series(make_ref("country", "KZ"), "probing")
        assert probing.step == 600
        np.testing.assert_array_equal(probing.values, [11500, 11502, np.nan, 0.0])
        assert s.entity_name(make_ref("asn", "9198")) == "JSC Kazakhtelecom"
        ents = {e.ref.fqid: e for e in s.read_entities()}
        assert ents["asn/9198"].parent == make_ref("country", "KZ")
        assert ents["region/KZ-75"].parent == make_ref("country", "KZ")
        assert s.connection.execute("SELECT count(*) FROM points WHERE value IS NULL"
                                    ).fetchone() == (1,)


def test_ioda_fixture_translates_datasources_and_records_originals(store_path: Path) -> None:
    res = run("series", "import", FIX / "ioda_signals_raw_kz.json", "--store", store_path)
    assert res.exit_code == 0, res.output
    listed = json.loads(series_list(store_path))
    assert [(r["entity_type"], r["entity_code"], r["signal"]) for r in listed] == [
        ("asn", "9198", "bgp"), ("country", "KZ", "bgp"), ("country", "KZ", "probing"),
        ("country", "KZ", "telescope")]
    assert listed[1]["first"] == "2022-01-05T00:00:00Z"
    with Store(store_path) as s:
        imp = s.list_imports()[0]
        assert imp.format == "ioda"
        assert set(imp.source_names) == {"bgp", "ping-slash24", "merit-nt"}
        tel = s.read_series(make_ref("country", "KZ"), "telescope")
        assert tel.step == 300 and np.isnan(tel.values[40]) and np.isnan(tel.values[41])
        assert s.entity_name(make_ref("country", "KZ")) == "Kazakhstan"


def test_gzipped_ioda_is_detected_by_content(tmp_path: Path, store_path: Path) -> None:
    gz = tmp_path / "dump.gz"
    gz.write_bytes(gzip.compress((FIX / "ioda_signals_raw_kz.json").read_bytes()))
    res = run("series", "import", gz, "--store", store_path)
    assert res.exit_code == 0, res.output
    assert "252 rows read" in res.output


def test_idempotent_reimport_changes_nothing(tmp_path: Path) -> None:
    csv_gz = tmp_path / "kz.csv.gz"
    csv_gz.write_bytes(gzip.compress((FIX / "kz_long.csv").read_bytes()))
    for i, f in enumerate((FIX / "ioda_signals_raw_kz.json", csv_gz)):
        store_path = tmp_path / f"s{i}.duckdb"
        first = run("series", "import", f, "--store", store_path)
        assert first.exit_code == 0 and " 0 unchanged)" in first.output
        before = series_list(store_path)
        res = run("series", "import", f, "--store", store_path)
        assert res.exit_code == 0
        assert " (0 inserted, 0 updated, " in res.output
        assert series_list(store_path) == before


def test_list_table_is_sorted_with_iso_times(store_path: Path) -> None:
    run("series", "import", FIX / "kz_long.csv", "--store", store_path)
    out = run("series", "list", "--store", store_path).output.splitlines()
    assert out[0].split() == ["entity_type", "entity_code", "signal", "points", "first", "last"]
    assert out[2].split() == ["asn", "9198", "bgp", "2", "2022-01-05T00:00:00Z",
                              "2022-01-05T00:05:00Z"]


def test_list_on_missing_store_is_empty_and_creates_nothing(store_path: Path) -> None:
    assert json.loads(series_list(store_path)) == []
    assert not store_path.exists()


MALFORMED = [
    ("bad_time", HEADER + "2022-01-05T00:00:00Z,country,KZ,bgp,1\nyesterday,country,KZ,bgp,1\n",
     3, "bad time"),
    ("bad_entity_type", HEADER + "1641340800,city,KZ,bgp,1\n", 2, "entity type"),
    ("bad_country", HEADER + "1641340800,country,KAZ,bgp,1\n", 2, "ISO 3166-1"),
    ("bad_region_parent",
     "time,entity_type,entity_code,signal,value,parent\n1641340800,region,KZ-75,bgp,1,RU\n",
     2, "lies in KZ, not RU"),
    ("non_numeric", HEADER + "1641340800,country,KZ,bgp,ten\n", 2, "non-numeric value"),
    ("nan_value", HEADER + "1641340800,country,KZ,bgp,nan\n", 2, "finite"),
    ("inf_value", HEADER + "1641340800,country,KZ,bgp,inf\n", 2, "finite"),
    ("field_count", HEADER + "1641340800,country,KZ,bgp\n", 2, "expected 5 fields"),
    ("fractional_time", HEADER + "1641340800.5,country,KZ,bgp,1\n", 2, "whole seconds"),
    ("empty_signal", HEADER + "1641340800,country,KZ, ,1\n", 2, "signal"),
    ("duplicate_conflict",
     HEADER + "1641340800,country,KZ,bgp,1\n2022-01-05T00:00:00Z,country,kz,bgp,2\n",
     3, "is 1.0 at line 3 but 2.0 at line 4"),
    ("missing_column", "time,entity_type,entity_code,value\n1641340800,country,KZ,1\n",
     1, "missing required column(s) signal"),
    ("unknown_column", HEADER.strip() + ",colour\n1641340800,country,KZ,bgp,1,red\n",
     1, "allowed: time"),
]


@pytest.mark.parametrize(("name", "text", "line", "needle"), MALFORMED,
                         ids=[m[0] for m in MALFORMED])
def test_malformed_row_with_fail_policy_leaves_store_unchanged(
        tmp_path: Path, store_path: Path, name: str, text: str, line: int, needle: str) -> None:
    run("series", "import", FIX / "kz_long.csv", "--store", store_path)
    before = series_list(store_path)
    # A good row first: it must not be written either (all-or-nothing).
    if text.startswith(HEADER):
        text = HEADER + "1641340200,country,KZ,bgp,5\n" + text[len(HEADER):]
        line += 1
    bad = write(tmp_path, f"{name}.csv", text)
    res = run("series", "import", bad, "--store", store_path)
    assert res.exit_code == 1
    assert f"{bad}:{line}: " in res.output, res.output
    assert needle in res.output
    assert series_list(store_path) == before
    with Store(store_path) as s:
        assert len(s.list_imports()) == 1
        assert s.read_series(make_ref("country", "KZ"), "bgp").values.size == 0


def test_duplicate_with_same_value_is_accepted(tmp_path: Path, store_path: Path) -> None:
    f = write(tmp_path, "d.csv", HEADER + "1641340800,country,KZ,bgp,1\n"
              "2022-01-05T06:00:00+06:00,country,KZ,bgp,1.0\n")
    res = run("series", "import", f, "--store", store_path)
    assert res.exit_code == 0 and "1 written" in res.output


@pytest.mark.parametrize(("content", "needle"), [
    (b"", "empty file"),
    (b"\n  \n", "empty file"),
    (b"time,entity_type,entity_code,signal,value\n1641340800,country,KZ,bgp,\xff\n",
     "undecodable bytes"),
])
def test_whole_file_errors_are_clear(tmp_path: Path, store_path: Path, content: bytes,
                                     needle: str) -> None:
    f = tmp_path / "x.csv"
    f.write_bytes(content)
    res = run("series", "import", f, "--on-error", "skip", "--store", store_path)
    assert res.exit_code == 1 and needle in res.output and str(f) in res.output


def test_undecodable_bytes_name_the_line(tmp_path: Path, store_path: Path) -> None:
    f = tmp_path / "x.csv"
    f.write_bytes(HEADER.encode() + b"1641340800,country,KZ,bgp,\xff\n")
    res = run("series", "import", f, "--store", store_path)
    assert f"{f}:2: undecodable bytes" in res.output


def test_truncated_gzip_fails_and_writes_nothing(tmp_path: Path, store_path: Path) -> None:
    data = gzip.compress((FIX / "kz_long.csv").read_bytes())
    f = tmp_path / "kz.csv.gz"
    f.write_bytes(data[: len(data) // 2])
    res = run("series", "import", f, "--store", store_path)
    assert res.exit_code == 1 and "truncated or corrupt gzip" in res.output
    assert json.loads(series_list(store_path)) == []


@pytest.mark.parametrize(("doc", "needle"), [
    ("{not json", "invalid JSON"),
    ("[]", "IODA envelope"),
    ('{"type": "signals"}', "no 'data'"),
    ('{"data": {"x": 1}}', "must be a list"),
    ('{"data": [[{"entityType": "country", "entityCode": "KZ", "datasource": "bgp",'
     ' "from": 1641340800, "until": 1641341400, "step": 0, "values": [1, 2]}]]}',
     "data[0][0].step"),
    ('{"data": [{"entityType": "country", "entityCode": "KZ", "datasource": "bgp",'
     ' "from": 1641340800, "step": 300, "values": [1, "x"]}]}', "data[0].values[1]"),
    ('{"data": [{"entityType": "planet", "entityCode": "KZ", "datasource": "bgp",'
     ' "from": 1641340800, "step": 300, "values": [1]}]}', "entity type"),
    ('{"data": [{"entityType": "country", "entityCode": "KZ",'
     ' "from": 1641340800, "step": 300, "values": [1]}]}', "missing field 'datasource'"),
])
def test_bad_ioda_json_fails_with_field_path(tmp_path: Path, store_path: Path, doc: str,
                                             needle: str) -> None:
    run("series", "import", FIX / "kz_long.csv", "--store", store_path)
    before = series_list(store_path)
    f = write(tmp_path, "bad.json", doc)
    res = run("series", "import", f, "--store", store_path)
    assert res.exit_code == 1, res.output
    assert needle in res.output and f"{f}" in res.output
    assert series_list(store_path) == before


def test_skip_policy_counts_reasons_with_first_lines(tmp_path: Path, store_path: Path) -> None:
    text = (HEADER + "1641340800,country,KZ,bgp,1\n"
            "bad,country,KZ,bgp,1\n"
            "1641341100,country,KZ,bgp,x\n"
            "worse,country,KZ,bgp,1\n"
            "1641341400,country,KZ,bgp,3\n"
            "1641340800,country,KZ,bgp,2\n")
    f = write(tmp_path, "mixed.csv", text)
    res = CliRunner().invoke(cli, ["series", "import", str(f), "--on-error", "skip",
                                   "--store", str(store_path)])
    assert res.exit_code == 0, res.output
    assert "6 rows read, 2 written" in res.stdout and "4 skipped" in res.stdout
    assert "bad time: 2 (first at 3, 5)" in res.stderr
    assert "non-numeric value: 1 (first at 4)" in res.stderr
    assert "conflicting duplicate: 1 (first at 7)" in res.stderr
    with Store(store_path) as s:
        kept = s.read_series(make_ref("country", "KZ"), "bgp")
        assert kept.values.tolist() == [1.0, 3.0] and kept.step == 600  # gap 600 inferred
        assert s.list_imports()[0].rows_skipped == 4


def test_skip_policy_bad_ioda_series_skips_its_points(tmp_path: Path, store_path: Path) -> None:
    doc = json.loads((FIX / "ioda_signals_raw_kz.json").read_text())
    doc["data"][0][0]["step"] = "five minutes"
    f = write(tmp_path, "x.json", json.dumps(doc))
    res = CliRunner().invoke(cli, ["series", "import", str(f), "--on-error", "skip",
                                   "--store", str(store_path)])
    assert res.exit_code == 0, res.output
    assert "252 rows read, 180 written" in res.stdout and "72 skipped" in res.stdout
    assert "bad series: 1 (first at data[0][0].step)" in res.stderr


def test_explicit_format_overrides_extension(tmp_path: Path, store_path: Path) -> None:
    f = tmp_path / "series.txt"
    shutil.copy(FIX / "kz_long.csv", f)
    assert run("series", "import", f, "--format", "csv", "--store", store_path).exit_code == 0
    res = run("series", "import", f, "--format", "ioda", "--store", store_path)
    assert res.exit_code == 1 and "invalid JSON" in res.output


def test_store_info_and_export(tmp_path: Path, store_path: Path) -> None:
    assert run("store", "info", "--store", store_path).exit_code == 3  # no store: store class
    run("series", "import", FIX / "kz_long.csv", "--store", store_path)
    res = run("store", "info", "--store", store_path)
    assert res.exit_code == 0 and f"schema version: {migrations.LATEST_VERSION}" in res.output
    assert any(line.split() == ["points", "7"] for line in res.output.splitlines())
    res = run("store", "export-parquet", tmp_path / "pq", "--store", store_path)
    assert res.exit_code == 0 and "points.parquet" in res.output
    assert (tmp_path / "pq" / "imports.parquet").exists()


# -- streaming import at size: line numbers, all-or-nothing, skip counts, gzip, time range --

def big_csv(n: int, bad: dict[int, str] | None = None) -> str:
    """``n`` good rows (20 series) with ``bad[i]`` replacing data row i (line i + 2)."""
    bad = bad or {}
    rows = [HEADER]
    for i in range(n):
        rows.append(bad.get(i, f"{1641340800 + 300 * (i // 20)},asn,AS{i % 20 + 1},bgp,{i}\n"))
    return "".join(rows)


def test_large_file_fail_names_the_line_and_writes_nothing(tmp_path: Path,
                                                           store_path: Path) -> None:
    n = 120_000
    f = write(tmp_path, "big.csv", big_csv(n, {100_000: "1641340800,asn,AS1,bgp,oops\n"}))
    run("series", "import", FIX / "kz_long.csv", "--store", store_path)
    before = series_list(store_path)
    res = run("series", "import", f, "--store", store_path)
    assert res.exit_code == 1
    assert f"{f}:100002: non-numeric value" in res.output, res.output
    assert series_list(store_path) == before
    with Store(store_path) as s:
        assert len(s.list_imports()) == 1
        assert s.table_counts()["points"] == 7


def test_large_file_skip_counts_with_lines_after_quoted_newlines_and_blank_lines(
        tmp_path: Path, store_path: Path) -> None:
    n = 120_000
    bad = {
        # 2 physical lines; a newline is a control character in a name (issue 12, rule
        # control-name): refused, counted at the line the record ends on
        10: "1641340800,country,KZ,bgp,1,\"Kazakh\nstan\"\n",
        11: "\n",  # a blank line: not a row
        50_000: "1641340800,asn,AS1,bgp\n",  # wrong field count
        90_000: "253402300800,asn,AS1,bgp,1,x\n",  # year 10000
        90_001: "1e18,asn,AS1,bgp,1,x\n",
        90_002: "1e308,asn,AS1,bgp,1,x\n",
        90_003: "1969-12-31T23:59:59Z,asn,AS1,bgp,1,x\n",
        110_000: "1641340800,asn,AS1,bgp,7,x\n",  # conflicts with data row 0
    }
    rows = ["time,entity_type,entity_code,signal,value,entity_name\n"]
    for i in range(n):
        rows.append(bad.get(i, f"{1641340800 + 300 * (i // 20)},asn,AS{i % 20 + 1},bgp,{i},\n"))
    f = write(tmp_path, "big.csv", "".join(rows))
    res = CliRunner().invoke(cli, ["series", "import", str(f), "--on-error", "skip",
                                   "--store", str(store_path)])
    assert res.exit_code == 0, res.output
    # data row i sits on line i + 2, plus 1 after the two-line record (row 10)
    assert "wrong field count: 1 (first at 50003)" in res.stderr, res.stderr
    assert "time out of range: 4 (first at 90003, 90004, 90005, 90006)" in res.stderr
    assert "conflicting duplicate: 1 (first at 110003)" in res.stderr
    assert "control character: 1 (first at 13)" in res.stderr
    assert f"{n - 1} rows read, {n - 8} written" in res.stdout, res.stdout
    with Store(store_path) as s:
        assert s.entity_name(make_ref("country", "KZ")) != "Kazakh\nstan"
        assert s.list_imports()[0].rows_skipped == 7


@pytest.mark.parametrize("raw", ["253402300800", "1e18", "1e308", "-1", "2100-01-01T00:00:00Z",
                                 "1969-12-31T23:59:59Z"])
def test_times_outside_1970_2100_fail_with_the_line(tmp_path: Path, store_path: Path,
                                                    raw: str) -> None:
    f = write(tmp_path, "t.csv", GOOD + f"{raw},country,KZ,bgp,1\n")
    res = run("series", "import", f, "--store", store_path)
    assert res.exit_code == 1
    assert f"{f}:4: time out of range" in res.output, res.output
    assert not store_path.exists() or json.loads(series_list(store_path)) == []


def test_ioda_from_outside_the_time_range_is_rejected(tmp_path: Path, store_path: Path) -> None:
    doc = json.loads((FIX / "ioda_signals_raw_kz.json").read_text())
    doc["data"][0][0]["from"] = 253402300800
    f = write(tmp_path, "x.json", json.dumps(doc))
    res = run("series", "import", f, "--store", store_path)
    assert res.exit_code == 1 and "time out of range" in res.output, res.output


def test_large_gzip_file_imports_like_the_plain_one(tmp_path: Path) -> None:
    text = big_csv(60_000)
    plain = write(tmp_path, "p.csv", text)
    gz = tmp_path / "g.csv.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    outs = []
    for f, name in ((plain, "a"), (gz, "b")):
        store = tmp_path / f"{name}.duckdb"
        res = run("series", "import", f, "--store", store)
        assert res.exit_code == 0, res.output
        assert "60000 rows read, 60000 written (60000 inserted" in res.output
        outs.append(series_list(store))
        again = run("series", "import", f, "--store", store)
        assert "(0 inserted, 0 updated, 60000 unchanged)" in again.output
    assert outs[0] == outs[1]


# -- the staged (bulk) write is the same upsert as the numpy write --------------------------

BATCH_KEYS = [("country", "KZ", "bgp"), ("asn", "9198", "probing"), ("country", "UA", "x")]
batch_rows = st.lists(
    st.tuples(st.integers(0, len(BATCH_KEYS) - 1), st.integers(0, 30),
              st.one_of(st.just(math.nan), st.integers(-3, 3).map(float))),
    min_size=1, max_size=30)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(batch_rows, st.sampled_from([None, 300, 600])), min_size=1,
                max_size=4))
def test_staged_write_equals_numpy_write(batches: list[tuple[list[tuple[int, int, float]],
                                                              int | None]]) -> None:
    """Any sequence of batches (repeated keys: last wins; NaN; overlaps with stored points;
    declared steps) gives the same counts, points and series rows through
    ``write_staged_points`` (a relation in the store's connection, the importer's path) as
    through ``write_points`` (numpy columns)."""
    with tempfile.TemporaryDirectory() as tmp:
        with Store(Path(tmp) / "a.duckdb") as a, Store(Path(tmp) / "b.duckdb") as b:
            for rows, step in batches:
                et = [BATCH_KEYS[k][0] for k, _, _ in rows]
                ec = [BATCH_KEYS[k][1] for k, _, _ in rows]
                sig = [BATCH_KEYS[k][2] for k, _, _ in rows]
                t = np.array([T0 + 300 * i for _, i, _ in rows], dtype=np.int64)
                v = np.array([x for _, _, x in rows], dtype=np.float64)
                ra = a.write_points(et, ec, sig, t, v, source="s", step=step)
                b.connection.register("_rows", {
                    "entity_type": np.asarray(et, dtype=object),
                    "entity_code": np.asarray(ec, dtype=object),
                    "signal": np.asarray(sig, dtype=object), "time": t, "value": v,
                    "idx": np.arange(len(rows), dtype=np.int64)})
                b.connection.execute("CREATE OR REPLACE TEMP TABLE _staged AS"
                                     " SELECT * FROM _rows")
                b.connection.unregister("_rows")
                rb = b.write_staged_points("_staged", source="s", step=step)
                assert ra == rb
            for table, order in (("points", "entity_type, entity_code, signal, time"),
                                 ("series", "entity_type, entity_code, signal")):
                q = f"SELECT * FROM {table} ORDER BY {order}"
                assert a.connection.execute(q).fetchall() == b.connection.execute(q).fetchall()


def test_staged_write_rejects_a_non_name(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as s, pytest.raises(ValueError, match="relation name"):
        s.write_staged_points("points; DROP TABLE points", source="s")


def test_pipeline_writes_buffered_batches_before_staged_points(tmp_path: Path) -> None:
    """Order of writes = order of calls: a buffered batch, then staged points for the same
    key, leaves the staged value (the later one), and both count in the pipeline's stats."""
    with Store(tmp_path / "s.duckdb") as s:
        p = Pipeline(s)
        p.emit(point_batch([("country", "KZ", "bgp", T0, 1.0)], source="a"))
        s.connection.execute(f"CREATE TEMP TABLE _st AS SELECT 'country' AS entity_type,"
                             f" 'KZ' AS entity_code, 'bgp' AS signal, {T0}::BIGINT AS time,"
                             " 2.0::DOUBLE AS value, 0::BIGINT AS idx")
        p.write_staged("_st", source="b")
        assert s.read_series(make_ref("country", "KZ"), "bgp").values.tolist() == [2.0]
        assert (p.stats.inserted, p.stats.updated) == (1, 1)


def test_duplicate_check_finds_repeats_across_hash_parts(
        tmp_path: Path, store_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the duplicate check split into many hash parts (bounded memory), a conflicting
    duplicate is still found with both lines, and a same-value one still dropped."""
    monkeypatch.setattr(csv_format, "HASH_PART", 1000)  # 120,000 rows -> 128 parts
    n = 120_000
    f = write(tmp_path, "big.csv", big_csv(n, {
        70_000: "1641340800,asn,AS1,bgp,0\n",  # same value as data row 0: dropped
        110_000: "1641340800,asn,AS2,bgp,7\n",  # conflicts with data row 1
    }))
    res = run("series", "import", f, "--store", store_path)
    assert res.exit_code == 1
    assert f"{f}:110002: conflicting duplicate: asn/2 bgp at 1641340800 is 1.0 at line 3" \
           in res.output, res.output
    res = CliRunner().invoke(cli, ["series", "import", str(f), "--on-error", "skip",
                                   "--store", str(store_path)])
    assert res.exit_code == 0, res.output
    assert "conflicting duplicate: 1 (first at 110002)" in res.stderr
    assert f"{n} rows read, {n - 2} written" in res.stdout, res.stdout
