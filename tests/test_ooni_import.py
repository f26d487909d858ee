"""``netvigil ooni import`` end to end into a real DuckDB store: bucket layout, series values
(platform share, volume with a blackout, mechanisms), error policy, bounds, idempotence."""

from __future__ import annotations

import gzip
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from netvigil.cli.main import cli
from netvigil.model import InputError
from netvigil.sources.ooni.reader import bucket_files, iter_records
from netvigil.store import Store

FIX = Path(__file__).parent / "fixtures" / "ooni"
T0 = 1_641_340_800  # 2022-01-05 00:00 UTC
H = 3600


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def telegram(hour: int, asn: int, blocked: bool, k: int = 0) -> dict[str, Any]:
    """A telegram 0.3.0 measurement as OONI probes write it: 12 DC connects, DC POSTs."""
    t = T0 + hour * H + 60 * k
    st = {"success": not blocked, "failure": "generic_timeout_error" if blocked else None}
    return {
        "test_name": "telegram", "test_version": "0.3.0", "data_format_version": "0.2.0",
        "measurement_start_time": datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "probe_cc": "KZ", "probe_asn": f"AS{asn}", "input": None,
        "report_id": f"r{hour}-{asn}-{k}",
        "test_keys": {
            "tcp_connect": [{"ip": "149.154.175.50", "port": 443, "status": st}] * 12,
            "requests": [{"failure": "generic_timeout_error" if blocked else None,
                          "request": {"url": "http://149.154.175.50/"}}] * 6,
            "telegram_tcp_blocking": blocked, "telegram_http_blocking": blocked,
            "telegram_web_status": "ok", "telegram_web_failure": None}}


def bucket(root: Path, docs: list[dict[str, Any]]) -> None:
    """OONI's layout raw/YYYYMMDD/HH/CC/testname/*.jsonl.gz (by measurement hour here)."""
    by_dir: dict[Path, list[dict[str, Any]]] = {}
    for d in docs:
        t = datetime.strptime(d["measurement_start_time"], "%Y-%m-%d %H:%M:%S")
        folder = root / "raw" / t.strftime("%Y%m%d") / t.strftime("%H") / d["probe_cc"] / \
            d["test_name"]
        by_dir.setdefault(folder, []).append(d)
    for folder, ds in by_dir.items():
        folder.mkdir(parents=True, exist_ok=True)
        with gzip.open(folder / "2022010500_KZ_telegram.n0.0.jsonl.gz", "wt") as fh:
            fh.write("".join(json.dumps(d) + "\n" for d in ds))


def points(store_path: Path, etype: str, code: str, signal: str) -> dict[int, float]:
    with Store(store_path, read_only=True) as s:
        rows = s.connection.execute(
            "SELECT time, value FROM points WHERE entity_type = ? AND entity_code = ? "
            "AND signal = ? ORDER BY time", [etype, code, signal]).fetchall()
    return {int(t) - T0: v for t, v in rows}


# Hours 0-9 open, 10-13 Telegram blocked on AS 9198 only, 14-17 open, 18-21 blackout (no
# measurement at all), 22-25 open again.
BLOCK = range(10, 14)
BLACKOUT = range(18, 22)
HOURS = [h for h in range(26) if h not in BLACKOUT]


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Result]:
    tmp = tmp_path_factory.mktemp("ooni")
    docs = [telegram(h, asn, asn == 9198 and h in BLOCK, k)
            for h in HOURS for asn in (9198, 29355) for k in range(2)]
    bucket(tmp / "bucket", docs)
    store = tmp / "s.duckdb"
    res = run("ooni", "import", "--dir", tmp / "bucket", "--store", store)
    return tmp, store, res


def test_bucket_import_gives_platform_share_per_country_and_as(
        imported: tuple[Path, Path, Result]) -> None:
    _tmp, store, res = imported
    assert res.exit_code == 0, res.output
    assert "88 measurements accepted" in res.output
    kz = points(store, "country", "KZ", "platform:telegram")
    blocked_as = points(store, "asn", "9198", "platform:telegram")
    other_as = points(store, "asn", "29355", "platform:telegram")
    assert set(kz) == {h * H for h in HOURS}  # the blackout is missing, not 0 %
    assert all(kz[h * H] == (50.0 if h in BLOCK else 100.0) for h in HOURS)
    assert all(blocked_as[h * H] == (0.0 if h in BLOCK else 100.0) for h in HOURS)
    assert set(other_as.values()) == {100.0}


def test_volume_collapses_to_zero_in_the_blackout(imported: tuple[Path, Path, Result]) -> None:
    _tmp, store, _res = imported
    kz = points(store, "country", "KZ", "ooni-volume")
    assert set(kz) == {h * H for h in range(26)}
    assert [kz[h * H] for h in range(26)] == [0.0 if h in BLACKOUT else 4.0 for h in range(26)]
    assert points(store, "asn", "29355", "ooni-volume")[0] == 2.0


def test_mechanism_series_name_tcp_and_fall_to_zero(imported: tuple[Path, Path, Result]) -> None:
    _tmp, store, _res = imported
    tcp = points(store, "asn", "9198", "platform-blocked:telegram:tcp")
    assert {h: tcp[h * H] for h in HOURS} == {h: (2.0 if h in BLOCK else 0.0) for h in HOURS}
    with Store(store, read_only=True) as s:
        signals = {r[0] for r in s.connection.execute(
            "SELECT DISTINCT signal FROM points").fetchall()}
        imports = s.connection.execute("SELECT count(*), sum(rows_read) FROM imports"
                                       ).fetchone()
    assert signals == {"platform:telegram", "ooni-volume", "platform-blocked:telegram:tcp"}
    assert imports == (1, 88)  # one row per import (a manifest digest of its files)


def test_reimport_changes_nothing(imported: tuple[Path, Path, Result]) -> None:
    tmp, store, _res = imported
    before = points(store, "country", "KZ", "platform:telegram")
    res = run("ooni", "import", "--dir", tmp / "bucket", "--store", store)
    # every measurement is in the store's ledger already: nothing derived, nothing written
    assert res.exit_code == 0 and " 0 points written; 0 new to the store, 88 stored before" \
        in res.output, res.output
    assert points(store, "country", "KZ", "platform:telegram") == before
    with Store(store, read_only=True) as s:
        last = s.connection.execute("SELECT inserted, updated FROM imports ORDER BY id DESC "
                                    "LIMIT 1").fetchone()
    assert last == (0, 0)


def test_shared_fixtures_import_with_malformed_flagged(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    res = run("ooni", "import", FIX, "--on-error", "skip", "--store", store)
    assert res.exit_code == 0, res.output
    assert "26 file(s): 25 measurements accepted" in res.output
    # report1.json.pretty is report1.json pretty-printed: one measurement, counted once
    assert "0 malformed, 1 duplicate(s), 1 without a country" in res.output
    assert "http_requests: 2" in res.output  # http_requests_1.json + binary_city.yaml's entry
    # binary_city.yaml (2015 YAML report): its one entry under the header's IS / AS51896 at
    # start_time 1446726576 (2015-11-05 12:29:36 UTC) -> the 12:00 hour's volume
    hour = 1_446_724_800 - T0
    assert points(store, "country", "IS", "ooni-volume") == {hour: 1.0}
    assert points(store, "asn", "51896", "ooni-volume") == {hour: 1.0}
    ir = points(store, "asn", "197207", "platform-blocked:facebook:dns")
    assert list(ir.values()) == [1.0]
    (tls,) = points(store, "asn", "30722", "tls-handshake:signal").values()  # signal_022
    assert 1.0 < tls < 2000.0  # milliseconds, from its tls_handshake_start/_done events


LEGACY_HEADER = """---
probe_asn: AS9198
probe_cc: KZ
probe_city: !!binary |
  UmV5a2phdu1r
report_id: legacy-kz
start_time: 1446726576.0
test_name: http_requests
...
"""


def test_legacy_yaml_report_entries_take_the_header_and_a_bad_document_is_one_record(
        tmp_path: Path) -> None:
    entry = "---\ninput: http://{0}.kz\ntest_start_time: {1}\nheaders_diff: !!set {{}}\n...\n"
    f = tmp_path / "r.yaml"
    f.write_text(LEGACY_HEADER + entry.format("a", 1446726576.0)
                 + "---\ninput: [unclosed\n...\n"  # line 15: a malformed document
                 + entry.format("b", "2015-11-05T14:00:01Z") + "---\n")  # an empty last one
    recs = list(iter_records(f))
    assert [(r.line, r.error is None) for r in recs] == [(10, True), (15, False), (18, True)]
    a = recs[0].doc
    assert a is not None and a["test_name"] == "http_requests" and a["probe_cc"] == "KZ"
    assert a["probe_city"] == "Reykjav\xedk" and a["test_keys"] == {"headers_diff": []}
    assert a["input"] == "http://a.kz" and a["measurement_start_time"] == 1446726576.0
    fail = run("ooni", "import", f, "--store", tmp_path / "f.duckdb")
    assert fail.exit_code == 1 and f"{f}:15: not YAML" in fail.stderr
    assert not (tmp_path / "f.duckdb").exists()  # read before the store is opened
    store = tmp_path / "s.duckdb"
    res = run("ooni", "import", f, "--on-error", "skip", "--store", store)
    assert res.exit_code == 0, res.output
    assert "2 measurements accepted" in res.output and "1 malformed" in res.output
    assert "r.yaml:15" in res.stderr
    # entry a at 12:29:36, entry b (its own test_start_time) at 14:00:01 UTC; 13:00 zero-filled
    hour = 1_446_724_800 - T0
    assert points(store, "asn", "9198", "ooni-volume") == {
        hour: 1.0, hour + H: 0.0, hour + 2 * H: 1.0}


def test_bad_line_fail_writes_nothing_skip_keeps_the_rest(tmp_path: Path) -> None:
    f = tmp_path / "m.jsonl"
    good = [json.dumps(telegram(h, 9198, False)) for h in range(3)]
    f.write_text("\n".join([good[0], '{"test_name": "telegram", "trunc', good[1], "[1, 2]",
                            json.dumps({"test_name": "telegram"}), good[2]]) + "\n")
    store = tmp_path / "s.duckdb"
    Store(store).close()
    res = run("ooni", "import", f, "--store", store)
    assert res.exit_code == 1 and f"{f}:2: not JSON" in res.stderr
    with Store(store, read_only=True) as s:
        assert s.connection.execute("SELECT count(*) FROM points").fetchone() == (0,)
    res = run("ooni", "import", f, "--on-error", "skip", "--store", store)
    assert res.exit_code == 0, res.output
    assert "3 measurements accepted" in res.output and "3 malformed" in res.output
    assert "not JSON: 1 (first at m.jsonl:2)" in res.stderr
    assert "not a JSON object: 1 (first at m.jsonl:4)" in res.stderr
    assert "measurement_start_time missing: 1 (first at m.jsonl:5)" in res.stderr
    assert len(points(store, "country", "KZ", "platform:telegram")) == 3


def test_first_line_bad_in_jsonl_does_not_swallow_the_file(tmp_path: Path) -> None:
    f = tmp_path / "m.jsonl"
    f.write_text('{"broken\n' + json.dumps(telegram(0, 1, False)) + "\n"
                 + json.dumps(telegram(1, 1, False)) + "\n")
    recs = list(iter_records(f))
    assert [(r.line, r.doc is not None) for r in recs] == [(1, False), (2, True), (3, True)]


def test_pretty_json_and_json_arrays(tmp_path: Path) -> None:
    pretty = tmp_path / "p.json"
    pretty.write_text("\ufeff" + json.dumps(telegram(0, 1, False), indent=2))
    arr = tmp_path / "a.json.gz"
    arr.write_bytes(gzip.compress(json.dumps([telegram(0, 1, False), 3]).encode()))
    assert [r.doc is not None for r in iter_records(pretty)] == [True]
    assert [(r.doc is not None, r.error) for r in iter_records(arr)] == [
        (True, None), (False, "not a JSON object (a int)")]


def test_line_cap_flags_one_record_and_reads_on(tmp_path: Path) -> None:
    f = tmp_path / "m.jsonl"
    big = json.dumps(dict(telegram(0, 1, False), pad="x" * 5000))
    f.write_text("\n".join([json.dumps(telegram(0, 1, False)), big,
                            json.dumps(telegram(1, 1, False))]) + "\n")
    recs = list(iter_records(f, max_line=4096))
    assert [(r.line, r.error) for r in recs] == [
        (1, None), (2, "line longer than 4096 bytes"), (3, None)]


def test_gzip_cap_and_truncated_gzip_are_whole_file_errors(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.jsonl.gz"
    bomb.write_bytes(gzip.compress(b"\n" * (4 << 20)))  # 4 MiB of newlines, 4 KiB on disk
    with pytest.raises(InputError, match="decompressed size exceeds 1048576 bytes"):
        list(iter_records(bomb, max_bytes=1 << 20))
    cut = tmp_path / "cut.jsonl.gz"
    data = gzip.compress(b"".join(json.dumps(telegram(h, 1, False)).encode() + b"\n"
                                  for h in range(50)))
    cut.write_bytes(data[: len(data) // 2])
    res = run("ooni", "import", cut, "--store", tmp_path / "f.duckdb")
    assert res.exit_code == 1 and "cut.jsonl.gz" in res.stderr
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps(telegram(60, 1, False)) + "\n")
    res = run("ooni", "import", cut, good, "--on-error", "skip", "--store",
              tmp_path / "s.duckdb")  # under skip one truncated file does not sink the batch
    assert res.exit_code == 0, res.output
    assert "cannot read file" in res.stderr and "(first at cut.jsonl.gz:file)" in res.stderr
    n = int(res.output.split(" measurements accepted")[0].split(": ")[-1])
    assert 1 <= n <= 51  # good.jsonl, plus any whole records read before the damage


def test_bucket_layout_is_required_for_dir(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    res = run("ooni", "import", "--dir", tmp_path / "x", "--store", tmp_path / "s.duckdb")
    assert res.exit_code == 1 and "raw/YYYYMMDD/HH/CC/testname" in res.stderr
    folder = tmp_path / "b" / "raw" / "20220105" / "07" / "KZ" / "signal"
    folder.mkdir(parents=True)
    shutil.copy(FIX / "signal_022.json", folder / "a.json")
    (folder / "notes.txt").write_text("x")
    assert bucket_files(tmp_path / "b") == [folder / "a.json"]
    assert bucket_files(tmp_path / "b" / "raw") == [folder / "a.json"]


def test_sha256_is_of_the_whole_raw_file_read_in_the_same_pass(tmp_path: Path) -> None:
    import hashlib

    for src in (FIX / "binary_city.yaml", FIX / "report1.json.pretty"):  # YAML stream / whole
        sha = hashlib.sha256()
        list(iter_records(src, sha=sha))
        assert sha.hexdigest() == hashlib.sha256(src.read_bytes()).hexdigest()
    f = tmp_path / "m.jsonl.gz"
    f.write_bytes(gzip.compress(json.dumps(telegram(0, 9198, False)).encode() + b"\n"))
    store = tmp_path / "s.duckdb"
    assert run("ooni", "import", f, "--store", store).exit_code == 0
    with Store(store, read_only=True) as s:
        row = s.connection.execute("SELECT file_name, sha256 FROM imports").fetchone()
    assert row == (str(f), hashlib.sha256(f.read_bytes()).hexdigest())


def test_hour_by_hour_imports_zero_fill_the_silence_between_them(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    for h in (0, 1, 5):  # hours 2-4: no file at all (a blackout between two imports)
        f = tmp_path / f"h{h}.jsonl"
        f.write_text(json.dumps(telegram(h, 9198, False)) + "\n")
        assert run("ooni", "import", f, "--store", store).exit_code == 0
    assert points(store, "country", "KZ", "ooni-volume") == {
        0: 1.0, H: 1.0, 2 * H: 0.0, 3 * H: 0.0, 4 * H: 0.0, 5 * H: 1.0}
    older = tmp_path / "old.jsonl"  # an older file later: nothing stored is zeroed
    older.write_text(json.dumps(telegram(3, 9198, False, k=1)) + "\n")
    assert run("ooni", "import", older, "--store", store).exit_code == 0
    vol = points(store, "country", "KZ", "ooni-volume")
    assert vol[3 * H] == 1.0 and vol[5 * H] == 1.0 and vol[0] == 1.0
