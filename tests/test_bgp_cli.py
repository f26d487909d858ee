"""``netvigil bgp elems`` and ``bgp visibility`` through click."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from click.testing import CliRunner

from netvigil.cli.main import cli

FIX = Path(__file__).parent / "fixtures" / "mrt"


def test_elems_psv_prints_bgpdump_lines() -> None:
    name = "bview.ipv4_unicast_add_path.gz"
    res = CliRunner().invoke(cli, ["bgp", "elems", str(FIX / name)])
    assert res.exit_code == 0, res.output
    gold = gzip.decompress((FIX / "expect" / f"{name}.bgp.gz").read_bytes()).decode()
    assert res.stdout == gold


def test_elems_json_prints_one_object_per_element() -> None:
    res = CliRunner().invoke(cli, ["bgp", "elems", "--format", "json",
                                   str(FIX / "updates.long_withdrawal.gz")])
    assert res.exit_code == 0
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(rows) == 4096 and rows[0]["type"] == "W"
    assert rows[0]["prefix"] == "2001:db8::/64" and rows[0]["peer_asn"] == 65531


def test_elems_fail_policy_exits_1_with_the_byte_offset() -> None:
    res = CliRunner().invoke(cli, ["bgp", "elems", "--on-error", "fail",
                                   str(FIX / "bview.20140112.1600_3samples.bz2")])
    assert res.exit_code == 1
    assert "byte offset 0" in res.stderr and "PEER_INDEX_TABLE" in res.stderr


def test_elems_skip_policy_warns_with_counts() -> None:
    res = CliRunner().invoke(cli, ["bgp", "elems", str(FIX / "rib.20161101.0000_pick.bz2")])
    assert res.exit_code == 0 and len(res.stdout.splitlines()) == 4
    res = CliRunner().invoke(cli, ["bgp", "elems",
                                   str(FIX / "rrc00_2000.03_updates.20000325.0345.gz")])
    assert res.exit_code == 0 and "2 record(s) skipped" in res.stderr


def test_visibility_command_reports_full_feed_peers_and_counts() -> None:
    res = CliRunner().invoke(cli, ["bgp", "visibility", "--ff-v4", "5000",
                                   str(FIX / "rib.20140523.0600_firstMB.bz2")])
    assert res.exit_code == 0, res.output
    assert "full-feed v4 31" in res.stdout and "visible /24s 384277" in res.stdout
