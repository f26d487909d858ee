"""``netvigil bgp ingest --engine dask`` (RIB epochs on a 2-worker LocalCluster): the stored
points and series equal the single-process ingest's, values included, on real archive
fixtures and on a synthetic multi-epoch archive of two collectors; a re-run reads finished
epochs from disk."""

from __future__ import annotations

import gzip
import random
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from distributed import Client

from netvigil.cli.main import cli
from netvigil.distributed.bgp import epoch_files, epochs, ingest_dask
from netvigil.geo import GeoLookup
from netvigil.pipeline import Pipeline
from netvigil.sources.bgp.ingest import BgpIngester, discover
from netvigil.sources.bgp.mrt.errors import ErrorPolicy
from netvigil.sources.bgp.visibility import VisibilityConfig
from netvigil.store.duck import Store
from netvigil.testing.mrt_encode import bgp4mp_update, write_rib

MRT = Path(__file__).parent / "fixtures" / "mrt"
T0 = 1_641_340_800  # 2022-01-05 00:00 UTC
POINTS = "SELECT entity_type, entity_code, signal, time, value FROM points ORDER BY ALL"
SERIES = ("SELECT entity_type, entity_code, signal, step, origin, first_time, last_time,"
          " n_points FROM series ORDER BY ALL")
PEERS = [("10.0.0.1", 65001), ("10.0.0.2", 65002), ("10.0.0.3", 65003)]
#: prefixes of several countries (EG, KZ, NZ, UZ) with their origins
ORIGIN = {"41.32.0.0/16": 8452, "41.33.0.0/22": 8452, "2.57.96.0/22": 9198,
          "2.57.100.0/24": 9198, "14.1.32.0/20": 9790, "37.110.208.0/21": 8193,
          "95.56.0.0/16": 9198}


@pytest.fixture(scope="module")
def client(dask_client: Client) -> Client:
    return dask_client  # the session's LocalCluster (tests/conftest.py)


def _archive(root: Path) -> None:
    """rrc00: RIBs at 00:00 and 01:00, updates every 5 min for 2 h; rrc01: one RIB at 00:00
    (so the 01:00 epoch replays it) and updates. Withdrawals make EG vanish in the second
    hour (measured zeros across epochs) and come back for one peer."""
    rng = random.Random(5)
    routes = {p: [(i, [PEERS[i][1], 3356, o]) for i in range(3)] for p, o in ORIGIN.items()}
    for coll, ribs in (("rrc00", (0, 3600)), ("rrc01", (0,))):
        (root / coll).mkdir(parents=True)
        for t in ribs:
            live = {p: r for p, r in routes.items() if not (t >= 3600 and p.startswith("41."))}
            hh = t // 3600
            write_rib(root / coll / f"bview.20220105.{hh:02d}00.gz", T0 + t, "192.0.2.1",
                      PEERS, live)
        for f in range(24):
            raw = b""
            t = T0 + 300 * f
            for k in range(6):
                peer = rng.randrange(3)
                ip, asn = PEERS[peer]
                pfx = rng.choice(list(ORIGIN))
                if f == 10 and pfx.startswith("41."):
                    raw += bgp4mp_update(t + k, ip, asn, withdraw=[pfx])
                elif rng.random() < 0.3 and not (f >= 12 and pfx.startswith("41.")):
                    raw += bgp4mp_update(t + k, ip, asn, announce=[pfx],
                                         as_path=[asn, 174, ORIGIN[pfx]])
                else:
                    raw += bgp4mp_update(t + k, ip, asn, withdraw=[pfx])
            hh, mm = divmod(5 * f, 60)
            (root / coll / f"updates.20220105.{hh:02d}{mm:02d}.gz").write_bytes(
                gzip.compress(raw))


def _rows(path: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    with Store(path, read_only=True) as store:
        con = store.connection
        return con.execute(POINTS).fetchall(), con.execute(SERIES).fetchall()


def test_epochs_replay_each_collector_from_its_latest_rib(tmp_path: Path) -> None:
    _archive(tmp_path / "a")
    files = discover([], tmp_path / "a", None)
    assert epochs(files) == [(None, None)]  # only 00:00 is a RIB time of both
    eps = epochs(files, shared=False)
    assert eps == [(None, T0 + 3600), (T0 + 3600, None)]
    second = epoch_files(files, eps[1])
    ribs = sorted((f.collector, f.time - T0) for f in second if f.is_rib)
    assert ribs == [("rrc00", 3600), ("rrc01", 0)]  # rrc01 replays from its 00:00 RIB
    # the first epoch reads up to the 01:00 RIB (it closes the bins before it), no further
    assert max((f.time - T0, f.is_rib) for f in epoch_files(files, eps[0])) == (3600, True)


def test_synthetic_two_epochs_equal_the_single_process(tmp_path: Path, client: Client) -> None:
    _archive(tmp_path / "a")
    geo = GeoLookup.default()
    cfg = VisibilityConfig(ff_v4=2)
    files = discover([], tmp_path / "a", None)
    with Store(tmp_path / "one.duckdb") as store:
        rep = BgpIngester(Pipeline(store, geo), config=cfg).run(files)
    with Store(tmp_path / "dask.duckdb") as store:
        got = ingest_dask(client, files, Pipeline(store, geo), cfg, ErrorPolicy.SKIP,
                          tmp_path / "work", shared=False)  # the replaying epochs
    assert got.epochs == 2 and got.bins == rep.bins == 24
    want = _rows(tmp_path / "one.duckdb")
    eg = [r for r in want[0] if r[1] == "EG" and r[2] == "bgp"]
    assert eg[0][4] and eg[-1][4] == 0.0  # EG measured, then a measured zero (2nd epoch)
    assert _rows(tmp_path / "dask.duckdb") == want
    # a re-run reads both epochs from disk, computes nothing, writes the same
    with Store(tmp_path / "dask.duckdb") as store:
        again = ingest_dask(client, files, Pipeline(store, geo), cfg, ErrorPolicy.SKIP,
                            tmp_path / "work", shared=False)
    assert again.resumed == 2 and _rows(tmp_path / "dask.duckdb") == want


def test_cli_real_fixture_archives_equal_the_single_process(tmp_path: Path,
                                                           client: Client) -> None:
    """Real RIS files: 2002 updates at 22:38 (an epoch before any RIB) and the 23:37 RIB."""
    files = [MRT / "updates.20020722.2238.gz", MRT / "bview.20020722.2337.first4000.gz"]
    common = ["bgp", "ingest", *map(str, files), "--collector", "rrc00", "--ff-v4", "1",
              "--ff-v6", "1"]
    one = CliRunner().invoke(cli, [*common, "--store", str(tmp_path / "one.duckdb")])
    many = CliRunner().invoke(cli, [*common, "--store", str(tmp_path / "dask.duckdb"),
                                    "--engine", "dask", "--scheduler",
                                    client.scheduler.address])
    assert one.exit_code == 0 and many.exit_code == 0, many.output
    assert "epochs 2" in many.stdout
    want = _rows(tmp_path / "one.duckdb")
    assert len(want[0]) > 50
    assert _rows(tmp_path / "dask.duckdb") == want


#: real archive files of several years (RIS and RouteViews, 2000-2016), laid out by collector
#: as a mirror is; the 2000.03 file has damaged records and the 2014 RIB is cut short, so
#: both engines also skip the same records
YEARS = {"rrc00": ["rrc00_2000.01_updates.20000102.2014.gz",
                   "rrc00_2000.03_updates.20000325.0345.gz", "updates.20020722.2238.gz",
                   "bview.20020722.2337.first4000.gz", "updates.20100722.2015.gz",
                   "updates.20160811.1600.first1500.gz"],
         "rrc01": ["rrc01_2000.11_updates.20001104.0124.gz"],
         "rrc06": ["ris.rrc06.updates.1427846400.gz"],
         "route-views2": ["rib.20140523.0600_firstMB.bz2", "rib.20161101.0000_pick.bz2"]}
CUT = ("95.56.0.0/16", "2.57.96.0/22", "2.57.100.0/24")  # KZ (AS9198) prefixes
DETECTED = {
    "alerts": "SELECT * FROM alerts ORDER BY ALL",
    "events": "SELECT * EXCLUDE (rules), list_sort(rules) FROM events ORDER BY ALL",
    "detector_state": "SELECT * FROM detector_state ORDER BY ALL",
}


def _kz_cut(root: Path, hours: int = 34, cut: tuple[int, int] = (26, 29)) -> None:
    """rrc10, 34 hours of 2022-01-05/06: a RIB every 8 hours and an updates file
    every hour; the three peers withdraw the KZ prefixes at ``cut[0]`` h and announce them
    again at ``cut[1]`` h, after a day of history for the 24-hour moving median."""
    (root / "rrc10").mkdir(parents=True)
    routes = {p: [(i, [PEERS[i][1], 3356, o]) for i in range(3)] for p, o in ORIGIN.items()}
    for h in range(0, hours, 8):
        live = {p: r for p, r in routes.items() if p not in CUT or not cut[0] <= h < cut[1]}
        day, hh = divmod(h, 24)
        write_rib(root / "rrc10" / f"bview.2022010{5 + day}.{hh:02d}00.gz", T0 + 3600 * h,
                  "192.0.2.10", PEERS, live)
    for h in range(hours):
        t = T0 + 3600 * h
        raw = b""
        for ip, asn in PEERS:
            if h == cut[0]:
                raw += bgp4mp_update(t + 60, ip, asn, withdraw=list(CUT))
            elif h == cut[1]:
                raw += bgp4mp_update(t + 60, ip, asn, announce=list(CUT),
                                     as_path=[asn, 3356, 9198])
            else:  # an unchanged route announced again: churn, no change in visibility
                raw += bgp4mp_update(t + 600, ip, asn, announce=["14.1.32.0/20"],
                                     as_path=[asn, 3356, 9790])
        day, hh = divmod(h, 24)
        (root / "rrc10" / f"updates.2022010{5 + day}.{hh:02d}00.gz").write_bytes(
            gzip.compress(raw))


def _detected(path: Path) -> dict[str, list[tuple[object, ...]]]:
    with Store(path, read_only=True) as store:
        return {k: store.connection.execute(q).fetchall() for k, q in DETECTED.items()}


def _both_engines(tmp_path: Path, mirror: Path, address: str) -> tuple[Path, Path]:
    """``bgp ingest --dir mirror`` then ``detect``: in one process into one store, and on
    the cluster at ``address`` (``--engine dask`` for both steps) into another."""
    n_files = sum(1 for p in mirror.rglob("*") if p.is_file())
    stores = (tmp_path / f"{mirror.name}-one.duckdb", tmp_path / f"{mirror.name}-dask.duckdb")
    for store, extra in zip(stores, ([], ["--engine", "dask", "--scheduler", address]),
                            strict=True):
        res = CliRunner().invoke(cli, ["bgp", "ingest", "--dir", str(mirror), "--ff-v4", "1",
                                       "--ff-v6", "1", "--store", str(store), *extra])
        assert res.exit_code == 0, res.output
        assert re.match(rf"files {n_files}\b", res.stdout), res.stdout
        if extra:
            assert re.search(r"^bgp epochs: (\d+)/\1 finished, ", res.stderr, re.M), res.stderr
        res = CliRunner().invoke(cli, ["detect", "--store", str(store), *extra])
        assert res.exit_code == 0, res.output
    return stores


def test_years_of_real_archives_give_the_same_series_and_events(
        tmp_path: Path, client: Client) -> None:
    """The issue's check: the same archive files (RIBs and updates of 2000-2016 from four
    collectors) ingested by one process and on the 2-worker LocalCluster give the same
    series and point values, and detection then the same alerts, events and detector
    states (one process on one store, ``detect --engine dask`` on the other)."""
    mirror = tmp_path / "years"
    for coll, names in YEARS.items():
        (mirror / coll).mkdir(parents=True)
        for name in names:
            shutil.copy(MRT / name, mirror / coll / name)
    one, dask = _both_engines(tmp_path, mirror, client.scheduler.address)
    want = _rows(one)
    years = {datetime.fromtimestamp(r[3], UTC).year for r in want[0]}
    assert {2000, 2002, 2010, 2014, 2015, 2016} <= years, sorted(years)
    assert _rows(dask) == want
    events = _detected(one)
    assert len(events["alerts"]) > 100 and len(events["events"]) > 10
    assert _detected(dask) == events


def test_a_synthetic_cut_is_found_alike_by_both_engines(tmp_path: Path,
                                                       client: Client) -> None:
    """KZ's prefixes withdrawn for three hours after a day of history (:func:`_kz_cut`):
    the same points, and the same national event starting at the withdrawal."""
    _kz_cut(tmp_path / "cut")
    one, dask = _both_engines(tmp_path, tmp_path / "cut", client.scheduler.address)
    assert _rows(dask) == _rows(one)
    events = _detected(one)
    kz = [e for e in events["events"] if e[1:3] == ("country", "KZ")]
    assert [(e[4], e[5]) for e in kz] == [(T0 + 26 * 3600, T0 + 29 * 3600)], kz
    assert _detected(dask) == events
