"""Issue 12, deliverable 3: the bounds of :mod:`netvigil.model.bounds` at every parser.

Each test is named for the rule it pins (``rules.RULES`` ids where the series importer has
one): times from 1990 (``time-range``), decompression bombs (``decompression-bound``) in the
series scan and both MRT decoders, line length (``line-length``) in the CSV reader and RIS
Live frames, JSON token length (``json-token-length``), entity-name length (``name-length``),
and the streaming IODA reader (defect 11): the same points whatever the key order or the
read size, numbers beyond the parser's range judged per value, duplicates across series.

Bombs are built as many identical gzip/bzip2 members of 1 MiB of zeros (a multi-member
stream is valid for both formats and both decoders), so the test writes a few kB and the
reader has to inflate past the 64 MiB floor before it refuses.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from netvigil.cli.main import cli
from netvigil.model import bounds
from netvigil.series import rules
from netvigil.series.batch import ErrorSink
from netvigil.series.ioda_format import SafeNumbers, parse_ioda
from netvigil.sources.bgp.fastrib import read_rib_columns
from netvigil.sources.bgp.mrt import ErrorPolicy, MrtError, MrtReader
from netvigil.sources.bgp.rislive import RisLiveClient, RisLiveError
from netvigil.store import Store

HEADER = "time,entity_type,entity_code,signal,value,entity_name\n"
T = 1_641_340_800  # 2022-01-05T00:00:00Z
MIB = 1 << 20


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def points(store: Path) -> list[tuple[Any, ...]]:
    if not store.exists():
        return []
    with Store(store) as s:
        return s.connection.execute("SELECT * FROM points ORDER BY ALL").fetchall()


def one_line_error(res: Result, *needles: str) -> str:
    assert res.exit_code != 0, res.output
    assert "Traceback" not in res.output, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, res.output
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def bomb(path: Path, kind: str, mib: int = (bounds.INFLATION_FLOOR >> 20) + 16,
         head: bytes = b"") -> Path:
    """``head`` then ``mib`` MiB of zeros as repeated compressed members."""
    comp = gzip.compress if kind == "gzip" else bz2.compress
    member = comp(bytes(MIB), 9)
    path.write_bytes((comp(head, 9) if head else b"") + member * mib)
    return path


# ---- time-range ------------------------------------------------------------------------

@pytest.mark.parametrize("t", ["0", "631151999", "1989-12-31T23:59:59Z", "4102444800"])
def test_time_range_refuses_before_1990_and_from_2100_in_csv(tmp_path: Path, t: str) -> None:
    f = tmp_path / "t.csv"
    f.write_text(HEADER + f"{T},country,KZ,bgp,1,\n{t},country,KZ,bgp,2,\n", encoding="utf-8")
    one_line_error(run("series", "import", f, "--store", tmp_path / "s.duckdb"),
                   f"{f}:3", "time out of range", bounds.TIME_RANGE_TEXT)
    assert points(tmp_path / "s.duckdb") == []


def test_time_range_admits_its_first_second_in_csv_and_ioda(tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    f.write_text(HEADER + f"{bounds.MIN_TIME},country,KZ,bgp,1,\n1990-01-01T00:05:00Z,"
                 f"country,KZ,bgp,2,\n", encoding="utf-8")
    store = tmp_path / "s.duckdb"
    assert run("series", "import", f, "--store", store).exit_code == 0
    j = tmp_path / "t.json"
    j.write_text(json.dumps({"data": [{"entityType": "country", "entityCode": "UA",
                                       "datasource": "bgp", "from": bounds.MIN_TIME,
                                       "step": 300, "values": [3]}]}), encoding="utf-8")
    assert run("series", "import", j, "--store", store).exit_code == 0
    assert [(c, t) for _e, c, _s, t, _v in points(store)] == [
        ("KZ", bounds.MIN_TIME), ("KZ", bounds.MIN_TIME + 300), ("UA", bounds.MIN_TIME)]


def test_time_range_refuses_epoch_zero_in_ioda(tmp_path: Path) -> None:
    j = tmp_path / "t.json"
    j.write_text(json.dumps({"data": [{"entityType": "country", "entityCode": "UA",
                                       "datasource": "bgp", "from": 0, "step": 300,
                                       "values": [3]}]}), encoding="utf-8")
    one_line_error(run("series", "import", j, "--store", tmp_path / "s.duckdb"),
                   "data[0].from", "time out of range", bounds.TIME_RANGE_TEXT)


# ---- decompression-bound ------------------------------------------------------------------

@pytest.mark.parametrize("policy", ["fail", "skip"])
@pytest.mark.parametrize("name", ["bomb.csv.gz", "bomb.json.gz"])
def test_decompression_bound_refuses_a_gzip_bomb_in_series_import(
        tmp_path: Path, name: str, policy: str) -> None:
    f = bomb(tmp_path / name, "gzip",
             head=HEADER.encode() if name.endswith(".csv.gz") else b'{"data": [')
    store = tmp_path / "s.duckdb"
    line = one_line_error(run("series", "import", f, "--on-error", policy, "--store", store),
                          str(f), rules.RULES["decompression-bound"].category)
    assert f"{bounds.MAX_INFLATION}x" in line
    assert points(store) == []


def test_decompression_bound_admits_a_small_file_of_any_ratio(tmp_path: Path) -> None:
    """Below the floor the ratio does not matter (2 MiB of blank lines compress ~1000x)."""
    rows = "".join(f"{T + 300 * i},country,KZ,bgp,1000,Kazakhstan\n" for i in range(100))
    raw = (HEADER + rows + "\n" * (2 * MIB)).encode()  # blank lines: ignored by the format
    f = tmp_path / "flat.csv.gz"
    f.write_bytes(gzip.compress(raw, 9))
    assert len(raw) / f.stat().st_size > bounds.MAX_INFLATION
    res = run("series", "import", f, "--store", tmp_path / "s.duckdb")
    assert res.exit_code == 0, res.output
    assert len(points(tmp_path / "s.duckdb")) == 100


def _mrt_header(mrt_type: int, subtype: int, length: int) -> bytes:
    """RFC 6396 common header of one record whose body is ``length`` bytes long."""
    return struct.pack(">IHHI", T, mrt_type, subtype, length)


@pytest.mark.parametrize("kind", ["gzip", "bzip2"])
def test_decompression_bound_stops_an_mrt_bomb_under_the_policy(tmp_path: Path,
                                                                kind: str) -> None:
    """One BGP4MP record declaring a 1 GiB body of zeros: the reader would have to inflate
    it all; the stream stops at the bound and the record is reported, not read."""
    f = bomb(tmp_path / f"updates.20220105.0000.{'gz' if kind == 'gzip' else 'bz2'}", kind,
             head=_mrt_header(16, 4, 1 << 30))
    with pytest.raises(MrtError, match="decompression bomb"):
        list(MrtReader(f, ErrorPolicy.FAIL))
    reader = MrtReader(f, ErrorPolicy.SKIP)
    assert list(reader) == []
    assert any("decompression bomb" in p[2] for p in reader.stats.problems), reader.stats
    # the CLI: one line naming the file, under fail
    one_line_error(run("bgp", "elems", f, "--on-error", "fail"), "decompression bomb")


def test_decompression_bound_stops_an_mrt_bomb_in_the_rib_fast_path(tmp_path: Path) -> None:
    f = bomb(tmp_path / "bview.20220105.0000.gz", "gzip", head=_mrt_header(13, 1, 1 << 30))
    with pytest.raises(MrtError, match="decompression bomb"):
        read_rib_columns(f, ErrorPolicy.FAIL)
    cols = read_rib_columns(f, ErrorPolicy.SKIP)
    assert len(cols) == 0
    assert any("decompression bomb" in p[2] for p in cols.stats.problems), cols.stats


# ---- line-length, json-token-length, name-length ----------------------------------------

def test_line_length_bounds_a_csv_row_under_the_policy(tmp_path: Path) -> None:
    f = tmp_path / "long.csv"
    f.write_text(HEADER + f"{T},country,KZ,bgp,1,K\n"
                 f"{T + 300},country,KZ,bgp,2,{'x' * bounds.MAX_LINE_BYTES}\n"
                 f"{T + 600},country,KZ,bgp,3,K\n", encoding="utf-8")
    store = tmp_path / "s.duckdb"
    one_line_error(run("series", "import", f, "--store", store), f"{f}:3", "line too long")
    assert points(store) == []
    res = CliRunner().invoke(cli, ["series", "import", str(f), "--on-error", "skip",
                                   "--store", str(store)])
    assert res.exit_code == 0, res.output
    assert "line too long: 1 (first at 3)" in res.stderr, res.stderr
    assert [v for *_k, v in points(store)] == [1.0, 3.0]


def test_json_token_length_refuses_a_huge_string_whole_file(tmp_path: Path) -> None:
    j = tmp_path / "long.json"
    j.write_text(json.dumps({"data": [{"entityType": "country", "entityCode": "KZ",
                                       "entityName": "K" * (bounds.MAX_JSON_TOKEN_BYTES + 1),
                                       "datasource": "bgp", "from": T, "step": 300,
                                       "values": [1]}]}), encoding="utf-8")
    one_line_error(run("series", "import", j, "--on-error", "skip", "--store",
                       tmp_path / "s.duckdb"), str(j), "JSON value too long")


def test_name_length_bounds_entity_names_in_csv_and_ioda(tmp_path: Path) -> None:
    ok, long_ = "N" * bounds.MAX_NAME_LEN, "N" * (bounds.MAX_NAME_LEN + 1)
    f = tmp_path / "n.csv"
    f.write_text(HEADER + f"{T},country,KZ,bgp,1,{ok}\n{T},country,UA,bgp,1,{long_}\n",
                 encoding="utf-8")
    store = tmp_path / "s.duckdb"
    one_line_error(run("series", "import", f, "--store", store), f"{f}:3",
                   "entity name too long")
    j = tmp_path / "n.json"
    j.write_text(json.dumps({"data": [
        {"entityType": "country", "entityCode": "KZ", "entityName": ok, "datasource": "bgp",
         "from": T, "step": 300, "values": [1]},
        {"entityType": "country", "entityCode": "UA", "entityName": long_,
         "datasource": "bgp", "from": T, "step": 300, "values": [1]}]}), encoding="utf-8")
    one_line_error(run("series", "import", j, "--store", store), "data[1].entityName",
                   "entity name too long")
    res = CliRunner().invoke(cli, ["series", "import", str(j), "--on-error", "skip",
                                   "--store", str(store)])
    assert res.exit_code == 0 and "entity name too long: 1" in res.stderr, res.output
    with Store(store) as s:
        assert s.connection.execute("SELECT code, length(name) FROM entities").fetchall() == [
            ("KZ", bounds.MAX_NAME_LEN)]


def test_line_length_bounds_a_ris_live_frame() -> None:
    frame = json.dumps({"type": "ris_message", "data": {"x": "y" * bounds.MAX_LINE_BYTES}})
    client = RisLiveClient(policy="skip")
    assert client.handle(frame) == []
    assert client.stats.malformed == 1 and "exceeds" in client.stats.problems[0][1]
    with pytest.raises(RisLiveError, match="exceeds"):
        RisLiveClient(policy="fail").handle(frame)


# ---- the streaming IODA reader (defect 11) -------------------------------------------------

def _series(code: str, values: list[Any], **kw: Any) -> dict[str, Any]:
    s = {"entityType": "country", "entityCode": code, "datasource": "bgp", "from": T,
         "step": 300, "values": values}
    s.update(kw)
    return s


class _Trickle:
    """A byte stream that returns at most ``n`` bytes per read (block edges everywhere)."""

    def __init__(self, data: bytes, n: int) -> None:
        self._f, self._n = io.BytesIO(data), n

    def read(self, size: int = -1) -> bytes:
        return self._f.read(self._n if size < 0 else min(size, self._n))


def test_streaming_ioda_reads_the_same_whatever_the_block_edges() -> None:
    """SafeNumbers carries strings and numbers cut by a read into the next block: reading
    3, 7 or 64k bytes at a time gives the same document, hostile numbers included."""
    doc = json.dumps({"data": [_series("KZ", [1, None, 2.5], entityName="A \\\" 99999999999999"
                                                                        "999999 \u00e9"),
                               _series("UA", [3])]})
    doc = doc.replace("[3]", "[123456789012345678901234, 1e400, -7e-400, 4]")
    whole = SafeNumbers(io.BytesIO(doc.encode())).read(1 << 20)
    for n in (3, 7, 1 << 16):
        s = SafeNumbers(_Trickle(doc.encode(), n))
        got = b"".join(iter(lambda s=s: s.read(1 << 16), b""))  # type: ignore[misc]
        assert got == whole, n
    parsed = json.loads(whole)
    assert parsed["data"][0]["entityName"] == json.loads(doc)["data"][0]["entityName"]
    assert parsed["data"][1]["values"][0] == 1.2345678901234568e23
    assert parsed["data"][1]["values"][1].startswith("<number beyond the float range")
    assert parsed["data"][1]["values"][2:] == [-0.0, 4]


def test_streaming_ioda_accepts_values_before_the_series_fields() -> None:
    doc = json.dumps({"data": [{"values": [1, 2], "step": 300, "from": T, "datasource": "bgp",
                                "entityCode": "KZ", "entityType": "country"}]})
    batch = parse_ioda(doc, "x.json", ErrorSink("x.json", "fail"))
    assert batch.times == [T, T + 300] and batch.values == [1.0, 2.0]


def test_streaming_ioda_checks_duplicates_across_series_against_the_store(
        tmp_path: Path) -> None:
    """Two answers concatenated: an overlapping point with the same value is kept once, one
    with another value is a conflicting duplicate naming both places."""
    j = tmp_path / "d.json"
    j.write_text(json.dumps({"data": [_series("KZ", [1, 2, 3]),
                                      _series("KZ", [2, 3, 4], **{"from": T + 300}),
                                      _series("KZ", [4], **{"from": T + 900})]}),
                 encoding="utf-8")
    store = tmp_path / "s.duckdb"
    assert run("series", "import", j, "--store", store).exit_code == 0
    assert [(t, v) for *_k, t, v in points(store)] == [(T, 1.0), (T + 300, 2.0),
                                                       (T + 600, 3.0), (T + 900, 4.0)]
    j.write_text(json.dumps({"data": [_series("UA", [1, 2]),
                                      _series("UA", [5], **{"from": T + 300})]}),
                 encoding="utf-8")
    one_line_error(run("series", "import", j, "--store", store), "conflicting duplicate",
                   "data[0].values[1]", "data[1].values[0]")
    res = CliRunner().invoke(cli, ["series", "import", str(j), "--on-error", "skip",
                                   "--store", str(store)])
    assert res.exit_code == 0 and "conflicting duplicate: 1" in res.stderr, res.output
    assert [(t, v) for _e, c, _s, t, v in points(store) if c == "UA"] == [(T, 1.0),
                                                                          (T + 300, 2.0)]


def test_streaming_ioda_counts_every_bad_value_beyond_the_examples(tmp_path: Path) -> None:
    j = tmp_path / "b.json"
    j.write_text(json.dumps({"data": [_series("KZ", ["x"] * 20 + [1])]}), encoding="utf-8")
    res = CliRunner().invoke(cli, ["series", "import", str(j), "--on-error", "skip",
                                   "--store", str(tmp_path / "s.duckdb")])
    assert res.exit_code == 0, res.output
    assert "bad value: 20 (first at data[0].values[0]" in res.stderr, res.stderr
    assert "21 rows read, 1 written" in res.stdout and "20 skipped" in res.stdout, res.stdout
