"""``netvigil run`` with MRT archives dropped into a watched folder, end to end (subprocesses).

A RIB written in real MRT (``netvigil.testing.mrt_encode.synthetic_rib``: 25,000 prefixes
seen by 4 peers, above the era rule's 20k floor, so the default full-feed rule applies) is
dropped while the observatory runs. It must go through the BGP backfill (``BgpIngester`` →
``Pipeline``) once: the stored ``bgp`` points are those ``netvigil bgp ingest`` writes for
the same file into another store, and a restart does not ingest it again. A real archive
without any full-feed peer (``tests/fixtures/mrt/rib.20161101.0000_pick.bz2``: 4 routes) is
not an error but is reported as such (``file.no_full_feed``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb

from netvigil.testing.mrt_encode import synthetic_rib
from test_observatory_support import cli, log_records, start_run, stop, wait_for, write_config

FIXTURES = Path(__file__).parent / "fixtures" / "mrt"
T_RIB = 1_700_000_000  # 2023-11-14T22:13:20Z
CONFIG = """
store = "obs.duckdb"
bin_seconds = 1
[watch]
dirs = ["incoming"]
settle_seconds = 0.3
"""


def _points(store: Path) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(store), read_only=True)
    try:
        return con.execute("SELECT entity_type, entity_code, signal, time, value FROM points "
                           "ORDER BY ALL").fetchall()
    finally:
        con.close()


def _ingested(log: Path, name: str) -> list[dict[str, object]]:
    return [r for r in log_records(log)
            if r["event"] == "file.ingested" and Path(str(r["file"])).name == name]


def test_a_dropped_rib_becomes_bgp_series_exactly_once(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, CONFIG)
    store, inbox = tmp_path / "obs.duckdb", tmp_path / "incoming"
    inbox.mkdir()
    rib = synthetic_rib(tmp_path / "bview.20231114.2213.gz", 25_000, 4, ts=T_RIB)
    # the peer: the same archive through `netvigil bgp ingest` (collector = the folder name)
    ref_store = tmp_path / "ref.duckdb"
    ref = cli("bgp", "ingest", str(rib), "--collector", "incoming", "--store", str(ref_store))
    assert ref.returncode == 0, ref.stderr
    expect = _points(ref_store)
    assert {s for _t, _c, s, _tm, _v in expect} == {"bgp"}
    assert sum(t == "country" for t, *_ in expect) > 50

    log1 = tmp_path / "run1.log"
    proc = start_run(cfg, log1, "--duration", "120")
    try:
        wait_for(lambda: any(r["event"] == "bin" for r in log_records(log1)), 60, "first bin",
                 proc)
        shutil.move(str(rib), str(inbox / rib.name))  # a rename into the folder
        (done,) = wait_for(lambda: _ingested(log1, rib.name), 60, "the RIB ingested", proc)

        def listed() -> list[dict[str, object]]:
            res = cli("series", "list", "--format", "json", "--store", str(store))
            assert res.returncode == 0, res.stderr
            return [r for r in json.loads(res.stdout) if r["signal"] == "bgp"]

        bgp_series = wait_for(listed, 60, "bgp series in `series list`", proc)
        running = proc.poll() is None
        # a real archive without a full-feed peer: read, reported, nothing written
        shutil.copy(FIXTURES / "rib.20161101.0000_pick.bz2", inbox / "pick.bz2")
        wait_for(lambda: _ingested(log1, "pick.bz2"), 60, "the 2016 pick ingested", proc)
    finally:
        code, _o, err = stop(proc)
    assert code == 0, err
    assert running
    assert done["format"] == "mrt" and done["bins"] == 1 and done["elements"] == 100_000
    assert done["points"] == len(expect)
    assert len(bgp_series) == len({(t, c) for t, c, *_ in expect})
    assert _points(store) == expect  # the same series as `netvigil bgp ingest`
    (warn,) = [r for r in log_records(log1) if r["event"] == "file.no_full_feed"]
    assert warn["level"] == "warning" and Path(str(warn["file"])).name == "pick.bz2"
    assert int(str(warn["largest_v4"])) <= int(str(warn["threshold_v4"]))

    # a restart: the archive is still in the folder and is not ingested again
    log2 = tmp_path / "run2.log"
    proc = start_run(cfg, log2, "--duration", "120")
    try:
        wait_for(lambda: sum(r["event"] == "file.already_ingested"
                             for r in log_records(log2)) == 2, 60, "both files known", proc)
    finally:
        code2, _o, err2 = stop(proc)
    assert code2 == 0, err2
    assert not any(r["event"] == "file.ingested" for r in log_records(log2))
    assert _points(store) == expect
    con = duckdb.connect(str(store), read_only=True)
    keys = con.execute("SELECT count(*) FROM state WHERE key LIKE 'watch:%'").fetchone()
    done_key = con.execute("SELECT value FROM state WHERE key = 'bgp:ingest:done'").fetchone()
    con.close()
    assert keys == (2,)
    assert done_key is not None and json.loads(done_key[0]) == [
        "incoming:bview.20231114.2213.gz:" + str((inbox / rib.name).stat().st_size),
        "incoming:pick.bz2:" + str((inbox / "pick.bz2").stat().st_size)]
