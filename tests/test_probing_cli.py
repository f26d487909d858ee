"""``netvigil probe``: targets summaries, collection into the store, clear errors; geo mapping."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import duckdb
import numpy as np
import pytest
from click.testing import CliRunner

from netvigil.cli.main import cli
from netvigil.geo.lookup import GeoLookup
from netvigil.model import EntityRef
from netvigil.model.facts import PointBatch
from netvigil.pipeline.probing import ProbingAggregator, ProbingOptions
from netvigil.sources.probing import icmp
from netvigil.sources.probing.prober import RoundResult
from netvigil.sources.probing.signals import round_fact, round_lines
from netvigil.sources.probing.targets import SelectionRule, from_blocks

FIX = Path(__file__).parent / "fixtures" / "probing"


def ip(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


def test_targets_summary_counts_sparse_blocks() -> None:
    res = CliRunner().invoke(cli, ["probe", "targets", "--targets", str(FIX / "targets_rows.csv")])
    assert res.exit_code == 0, res.output
    assert "blocks selected    1" in res.output
    assert "sparse dropped     2" in res.output


def test_census_builds_a_targets_file(tmp_path: Path) -> None:
    out = tmp_path / "t.csv"
    res = CliRunner().invoke(cli, ["probe", "targets", "--census",
                                   str(FIX / "census_replies.csv"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert out.read_text().splitlines()[1].startswith("192.0.2.0/24,192.0.2.1 192.0.2.2")


def test_bad_targets_file_fails_with_its_line_number() -> None:
    res = CliRunner().invoke(cli, ["probe", "run", "--targets",
                                   str(FIX / "bad_outside_block.csv"), "--no-store"])
    assert res.exit_code == 1
    assert "bad_outside_block.csv:3" in res.output and "not inside block" in res.output


def test_run_without_raw_socket_privilege_explains(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    def refuse(*_a: object, **_k: object) -> object:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(icmp, "_raw_socket", refuse)
    res = CliRunner().invoke(cli, ["probe", "run", "--targets", str(FIX / "targets_rows.csv"),
                                   "--rounds", "1", "--round-seconds", "1", "--no-store"])
    assert res.exit_code == 6  # the error boundary's "permission denied" class
    assert "needs root or CAP_NET_RAW" in res.output


def test_collect_merges_vantage_points_into_the_store(tmp_path: Path) -> None:
    files = []
    for vp, rounds in (("a", (0, 600, 1200)), ("b", (0, 600))):
        p = tmp_path / f"{vp}.jsonl"
        p.write_text("".join(json.dumps({
            "round_start": t + 3.5, "vantage": vp, "block": b, "state": "up", "belief": 0.99,
            "probes_sent": 1, "replies": 1, "lost": 0, "unreachable": 0, "rtt_ms_median": 12.0,
        }) + "\n" for t in rounds for b in ("192.0.2.0/24", "198.51.100.0/24")))
        files += ["--in", str(p)]
    store = tmp_path / "s.duckdb"
    res = CliRunner().invoke(cli, ["probe", "collect", *files, "--targets",
                                   str(FIX / "targets_blocks.csv"), "--expect", "a,b",
                                   "--store", str(store)])
    assert res.exit_code == 0, res.output
    assert "silent" in res.output
    con = duckdb.connect(str(store), read_only=True)
    vals = con.execute("SELECT time, value FROM points WHERE entity_code = 'KZ' AND "
                       "signal = 'probing' ORDER BY time").fetchall()
    lat = con.execute("SELECT value FROM points WHERE entity_code = 'KZ' AND "
                      "signal = 'probing-latency'").fetchall()
    con.close()
    assert vals == [(0, 2.0), (600, 2.0), (1200, 2.0)]
    assert {v for (v,) in lat} == {12.0}


def points(batches: list[PointBatch]) -> dict[tuple[str, str], float]:
    return {(f"{t}/{c}", str(sig)): float(v) for b in batches for t, c, sig, v in zip(
        b.entity_types, b.entity_codes, b.signals, b.values, strict=True)}


def one_round(n: int, replies: int = 1) -> RoundResult:
    z = np.zeros(n, dtype=np.uint8)
    return RoundResult("vp", 0, 1_641_340_800.0, 600.0, np.ones(n, np.int8),
                       np.full(n, 0.99, np.float32), np.ones(n, np.uint8),
                       np.full(n, replies, np.uint8), z, 1 - np.full(n, replies, np.uint8),
                       np.empty(0, np.int32), np.empty(0), 0)


def test_blocks_map_to_country_and_as_through_the_geo_lookup() -> None:
    t = from_blocks([(ip("2.72.0.0"), [ip("2.72.0.1")], 0.9), (ip("95.56.0.0"),
                     [ip("95.56.0.1")], 0.9), (ip("198.18.1.0"), [ip("198.18.1.1")], 0.9)],
                    SelectionRule(min_addresses=1)).targets
    agg = ProbingAggregator(GeoLookup.default(), ProbingOptions(min_entity_blocks=1))
    got = points(agg.points(round_fact(one_round(3), t)))
    assert got[("country/KZ", "probing")] == 2.0  # the lab range maps to no country
    assert got[("asn/9198", "probing")] == 1.0
    assert got[("block/198.18.1.0/24", "probing")] == 1.0  # but has its own block series
    small = ProbingAggregator(GeoLookup.default())  # rule probing.store.min-blocks: 1 < 5
    assert ("asn/9198", "probing") not in points(small.points(round_fact(one_round(3), t)))


def test_round_lines_and_the_fact_from_one_result() -> None:
    kz = EntityRef.parse("country/KZ")
    t = from_blocks([(ip(f"198.18.{k}.0"), [ip(f"198.18.{k}.{h}") for h in range(1, 21)], 0.8)
                     for k in range(3)], entities=[(kz,)] * 3).targets
    res = RoundResult("vp", 0, 1200.25, 600.0, np.array([1, 0, -2], dtype=np.int8),
                      np.array([0.99, 0.01, 0.99], dtype=np.float32),
                      np.array([1, 5, 0], dtype=np.uint8), np.array([1, 0, 0], dtype=np.uint8),
                      np.array([0, 2, 0], dtype=np.uint8), np.array([0, 3, 0], dtype=np.uint8),
                      np.array([0], dtype=np.int32), np.array([0.02]), 0)
    lines = list(round_lines(res, t))
    assert [d["state"] for d in lines] == ["up", "down", "unprobed"]
    assert lines[0]["rtt_ms_median"] == 20.0 and lines[1]["rtt_ms_median"] is None
    assert lines[0]["round_start_iso"] == "1970-01-01T00:20:00.250Z"
    fact = round_fact(res, t)
    assert fact.entity_overrides == ((kz,),) * 3 and fact.round_seconds == 600
    got = points(ProbingAggregator(GeoLookup((), (), use_iptocc=False),
                                   ProbingOptions(min_coverage=0.5)).points(fact))
    assert got[("country/KZ", "probing")] == 1.0  # 1 up, 1 down (5 losses), 1 unprobed
    assert got[("country/KZ", "probing-loss")] == pytest.approx(100 * 5 / 6)
    assert got[("country/KZ", "probing-latency")] == pytest.approx(20.0)
    assert np.isnan(got[("block/198.18.2.0/24", "probing-state")])


def test_blocks_map_to_regions_when_the_lookup_has_them() -> None:
    from netvigil.geo.lookup import BulkLocation, BulkRegions

    class RegionGeo:
        has_regions = True

        def bulk_blocks(self, starts: np.ndarray, when: object) -> BulkLocation:
            n = len(starts)
            return BulkLocation(np.zeros(n, dtype=np.int16), ["KZ"], np.zeros(n, np.int64),
                                "fake", None)

        def bulk_regions(self, starts: np.ndarray, when: object = None) -> BulkRegions:
            idx = np.where((np.asarray(starts) >> 16) == 0x0248, 0, -1).astype(np.int32)
            return BulkRegions(idx, ["KZ-75"])

    t = from_blocks([(ip("2.72.0.0"), [ip("2.72.0.1")], 0.9), (ip("95.56.0.0"),
                     [ip("95.56.0.1")], 0.9)],
                    SelectionRule(min_addresses=1)).targets
    agg = ProbingAggregator(RegionGeo(), ProbingOptions(min_entity_blocks=1))  # type: ignore[arg-type]
    got = points(agg.points(round_fact(one_round(2), t)))
    assert {k for k in got if k[1] == "probing" and not k[0].startswith("block/")} == {
        ("region/KZ-75", "probing"), ("country/KZ", "probing")}
    assert got[("region/KZ-75", "probing")] == 1.0 and got[("country/KZ", "probing")] == 2.0
