"""A Tor users surge during a platform block is evidence of blocking (issue 9, deliverable 6).

A hand-made store through the real commands: a Tor Metrics relay/bridge CSV (the layout
metrics.torproject.org serves) and raw OONI telegram measurements with a block, then
``netvigil detect`` and ``events --format json``. The platform-block events of the country
and its ASes must name the surge days inside the block (rule
``evidence.circumvention-surge``), never the earlier surge outside it, never the flat bridge
series. Nothing here shares a table or a threshold with the rule: the surges are 2.5-3x a
baseline that varies by up to 16 %, a quiet week is 1.0x."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result

from netvigil.cli.main import cli
from netvigil.events.classification import surges
from netvigil.model import EntityRef, EntityType, Series

T0 = 1_640_995_200  # 2022-01-01 00:00 UTC
H = 3600
DAY = 86400
DAYS = 8
BLOCK = (5 * 24, 6 * 24 + 12)  # telegram blocked: day 5 00:00 to day 6 12:00 (hours)
ASNS = (9198, 29355)
SURGE = {5: 3000, 6: 2500, 1: 2600}  # day -> users; day 1 is before the block
RULE = "evidence.circumvention-surge"


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def _day(d: int) -> str:
    return datetime.fromtimestamp(T0 + d * DAY, UTC).strftime("%Y-%m-%d")


def telegram(t: int, asn: int, blocked: bool) -> dict[str, Any]:
    conn = {"ip": "149.154.167.51", "port": 443,
            "status": {"success": not blocked,
                       "failure": "connection_reset" if blocked else None}}
    return {"test_name": "telegram", "test_version": "0.3.0", "data_format_version": "0.2.0",
            "measurement_start_time": datetime.fromtimestamp(t, UTC).strftime(
                "%Y-%m-%d %H:%M:%S"),
            "probe_cc": "KZ", "probe_asn": f"AS{asn}", "input": None,
            "report_id": f"{t}_{asn}", "test_keys": {
                "tcp_connect": [conn] * 12,
                "requests": [{"failure": "connection_reset" if blocked else None,
                              "request": {"url": "http://149.154.167.51/"}}] * 6,
                "telegram_web_status": "blocked" if blocked else "ok",
                "telegram_web_failure": "connection_reset" if blocked else None}}


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("torsurge")
    relay = tmp / "userstats-relay-country.csv"
    rows = [f"{_day(d)},kz,{SURGE.get(d, 1000 + (d % 5) * 40)},,,93"
            for d in range(-42, DAYS + 1)]
    relay.write_text("# Source: https://metrics.torproject.org/userstats-relay-country.csv\n"
                     "date,country,users,lower,upper,frac\n" + "\n".join(rows) + "\n")
    bridge = tmp / "userstats-bridge-country.csv"
    bridge.write_text("date,country,users,frac\n" + "\n".join(
        f"{_day(d)},kz,{300 + d % 3},90" for d in range(-42, DAYS + 1)) + "\n")
    docs = [telegram(T0 + h * H + 1200 * k + asn % 900, asn, BLOCK[0] <= h < BLOCK[1])
            for h in range(DAYS * 24) for asn in ASNS for k in range(2)]
    f = tmp / "kz.jsonl.gz"
    f.write_bytes(gzip.compress("".join(json.dumps(d) + "\n" for d in docs).encode()))
    store = tmp / "s.duckdb"
    for args in (("tor", "import", relay, bridge), ("ooni", "import", f), ("detect",)):
        res = run(*args, "--store", store)
        assert res.exit_code == 0, res.output
    res = run("events", "--format", "json", "--store", store)
    assert res.exit_code == 0, res.output
    out: list[dict[str, Any]] = json.loads(res.output)
    return out


def test_surge_during_the_block_is_named_on_its_platform_block_events(
        events: list[dict[str, Any]]) -> None:
    blocks = [e for e in events if e["kind"] == "platform-block"]
    assert {e["entity_code"] for e in blocks} == {"KZ", *map(str, ASNS)}, blocks
    for ev in blocks:
        assert RULE in ev["rules"], ev["rules"]
        found = ev["assessment"]["circumvention"]["surges"]
        assert set(found) == {"tor-users"}  # the bridge series stayed flat
        days = {(s["day"] - T0) // DAY: s["ratio"] for s in found["tor-users"]}
        assert set(days) == {5, 6}  # day 1's surge was not during the block
        assert days[5] >= 2.5 and days[6] >= 2.0


def test_surge_days_need_the_factor_over_a_baseline_with_enough_days() -> None:
    vals = np.full(40, 100.0)
    vals[[3, 20, 21]] = np.nan  # gaps do not count as baseline days
    vals[10] = 900.0  # only 10 days before it: too short a baseline to judge
    vals[30] = 260.0  # 2.6x the median of the 28 days before
    vals[35] = 190.0  # 1.9x: ordinary variation
    s = Series(EntityRef(EntityType.COUNTRY, "KZ"), "tor-users", T0, DAY, vals)
    assert surges(s) == [(T0 + 30 * DAY, 2.6)]
