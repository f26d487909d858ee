"""Tor data that lands AFTER a platform block's events were built still reaches the block's
events at the country AND at each of its ASes (rule ``evidence.circumvention-surge``).

Through the real commands, in the order a user may run them: ``ooni import`` (Telegram
blocked in two ASes), ``detect``, then ``tor import`` (a relay-users surge during the
block), ``detect`` again, ``events --format json``. The data is built here; the surge is
3x a flat baseline, the block a day and a half of TCP resets.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from netvigil.cli.main import cli

T0 = 1_640_995_200  # 2022-01-01 00:00 UTC
H = 3600
DAY = 86400
BLOCK = (5 * 24, 6 * 24 + 12)  # hours
ASNS = (9198, 29355)
RULE = "evidence.circumvention-surge"


def run(*args: str | Path) -> str:
    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res.output


def _telegram(t: int, asn: int, blocked: bool) -> dict[str, Any]:
    fail = "connection_reset" if blocked else None
    return {"test_name": "telegram", "test_version": "0.3.0", "data_format_version": "0.2.0",
            "measurement_start_time": datetime.fromtimestamp(t, UTC).strftime(
                "%Y-%m-%d %H:%M:%S"),
            "probe_cc": "KZ", "probe_asn": f"AS{asn}", "input": None,
            "report_id": f"{t}_{asn}", "test_keys": {
                "tcp_connect": [{"ip": "149.154.167.51", "port": 443,
                                 "status": {"success": not blocked, "failure": fail}}] * 4,
                "requests": [{"failure": fail,
                              "request": {"url": "http://149.154.167.51/"}}] * 2,
                "telegram_web_status": "blocked" if blocked else "ok",
                "telegram_web_failure": fail}}


def test_tor_imported_after_the_block_reaches_the_as_events(tmp_path: Path) -> None:
    docs = [_telegram(T0 + h * H + 600 * k + asn % 500, asn, BLOCK[0] <= h < BLOCK[1])
            for h in range(8 * 24) for asn in ASNS for k in range(2)]
    ooni = tmp_path / "kz.jsonl"
    ooni.write_text("".join(json.dumps(d) + "\n" for d in docs))
    relay = tmp_path / "userstats-relay-country.csv"
    relay.write_text("date,country,users,lower,upper,frac\n" + "".join(
        f"{datetime.fromtimestamp(T0 + d * DAY, UTC):%Y-%m-%d},kz,"
        f"{3000 if d in (5, 6) else 1000},,,90\n" for d in range(-35, 9)))
    store = tmp_path / "s.duckdb"
    run("ooni", "import", ooni, "--store", store)
    run("detect", "--store", store)
    before = json.loads(run("events", "--format", "json", "--store", store))
    blocks = [e for e in before if e["kind"] == "platform-block"]
    assert {e["entity_code"] for e in blocks} == {"KZ", *map(str, ASNS)}
    assert not any(RULE in e["rules"] for e in blocks)  # no Tor data yet
    out = run("tor", "import", relay, "--store", store)
    assert "platform-block events of 2 AS(es) (29355, 9198)" in out, out
    run("detect", "--store", store)
    after = json.loads(run("events", "--format", "json", "--store", store))
    blocks = [e for e in after if e["kind"] == "platform-block"]
    assert {e["entity_code"] for e in blocks} == {"KZ", *map(str, ASNS)}
    for ev in blocks:
        assert RULE in ev["rules"], (ev["entity_code"], ev["rules"])
        days = {(s["day"] - T0) // DAY
                for s in ev["assessment"]["circumvention"]["surges"]["tor-users"]}
        assert days == {5, 6}
    # only the assessment changed: the same events, same times
    key = [(e["entity_code"], e["start"], e["end"]) for e in before
           if e["kind"] == "platform-block"]
    assert sorted(key) == sorted((e["entity_code"], e["start"], e["end"]) for e in blocks)
