"""``netvigil probe``: targets summaries, collection into the store, clear errors; geo mapping."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from pathlib import Path

import duckdb
import numpy as np
import pytest
from click.testing import CliRunner

from netvigil.cli.main import cli
from netvigil.model import EntityRef
from netvigil.sources.probing import icmp
from netvigil.sources.probing.prober import RoundResult
from netvigil.sources.probing.signals import (
    build_entity_map,
    result_entity_round,
    round_lines,
)
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
    assert res.exit_code == 1
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


def test_blocks_map_to_country_and_as_through_the_geo_lookup() -> None:
    t = from_blocks([(ip("2.72.0.0"), [ip("2.72.0.1")], 0.9), (ip("95.56.0.0"),
                     [ip("95.56.0.1")], 0.9), (ip("198.18.1.0"), [ip("198.18.1.1")], 0.9)],
                    SelectionRule(min_addresses=1)).targets
    when = int(dt.datetime(2022, 1, 5, tzinfo=dt.UTC).timestamp())
    emap = build_entity_map(t, when)
    names = {ref.fqid: emap.members[emap.offsets[i]:emap.offsets[i + 1]].tolist()
             for i, ref in enumerate(emap.refs)}
    assert names["country/KZ"] == [0, 1]
    assert names["asn/9198"] == [1]
    assert all(2 not in v for v in names.values())  # the lab range maps to nothing


def test_round_lines_and_entity_values_from_one_result() -> None:
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
    er = result_entity_round(res, build_entity_map(t), min_coverage=0.5)
    assert float(er.up[0]) == 1.0
    assert float(er.loss[0]) == pytest.approx(100 * 5 / 6)
    assert float(er.latency_ms[0]) == pytest.approx(20.0)


def test_blocks_map_to_regions_when_the_lookup_has_them() -> None:
    from netvigil.geo.lookup import BulkLocation

    class RegionGeo:
        def bulk_blocks(self, starts: np.ndarray, when: object) -> BulkLocation:
            n = len(starts)
            return BulkLocation(np.zeros(n, dtype=np.int16), ["KZ"], np.zeros(n, np.int64),
                                "fake", None)

        def region(self, cidr: str, when: object) -> str | None:
            return "KZ-75" if cidr.startswith("2.72.") else None

    t = from_blocks([(ip("2.72.0.0"), [ip("2.72.0.1")], 0.9), (ip("95.56.0.0"),
                     [ip("95.56.0.1")], 0.9)],
                    SelectionRule(min_addresses=1)).targets
    emap = build_entity_map(t, 0, geo=RegionGeo())
    members = {ref.fqid: emap.members[emap.offsets[i]:emap.offsets[i + 1]].tolist()
               for i, ref in enumerate(emap.refs)}
    assert members == {"region/KZ-75": [0], "country/KZ": [0, 1]}
