"""OONI measurements -> ``netvigil ooni import`` -> ``detect`` -> ``events --format json``:
the platform-block event names the blocked platforms and its times, never an unblocked
one, and a blackout with no measurements at all becomes a volume collapse, not silence.

The measurements are built here in the raw shape OONI probes write (telegram 0.3.0,
whatsapp, signal, facebook_messenger test keys); nothing in this file shares a table or a
threshold with the verdict rules or the detector."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from netvigil.cli.main import cli

T0 = 1_640_995_200  # 2022-01-01 00:00 UTC
H = 3600
DAYS = 9
BLOCK = (5 * 24, 6 * 24 + 12)  # telegram and whatsapp blocked: day 5 00:00 to day 6 12:00
BLACKOUT = (7 * 24 + 6, 7 * 24 + 18)  # no measurement at all
ASNS = (9198, 29355, 21299)


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def _conn(ok: bool) -> dict[str, Any]:
    return {"ip": "149.154.167.51", "port": 443,
            "status": {"success": ok, "failure": None if ok else "connection_reset"}}


def measurement(test: str, t: int, asn: int, blocked: bool) -> dict[str, Any]:
    keys: dict[str, Any]
    if test == "telegram":
        keys = {"tcp_connect": [_conn(not blocked)] * 12,
                "requests": [{"failure": "connection_reset" if blocked else None,
                              "request": {"url": "http://149.154.167.51/"}}] * 6,
                "telegram_web_status": "blocked" if blocked else "ok",
                "telegram_web_failure": "connection_reset" if blocked else None}
    elif test == "whatsapp":
        keys = {"whatsapp_endpoints_status": "blocked" if blocked else "ok",
                "whatsapp_web_status": "ok", "registration_server_status": "ok",
                "tcp_connect": [_conn(not blocked)] * 8}
    elif test == "signal":
        keys = {"signal_backend_status": "ok", "signal_backend_failure": None}
    else:
        keys = {"facebook_dns_blocking": False, "facebook_tcp_blocking": False,
                "facebook_b_api_dns_consistent": True, "facebook_b_api_reachable": True}
    return {"test_name": test, "test_version": "0.3.0" if test != "signal" else "0.2.4",
            "data_format_version": "0.2.0",
            "measurement_start_time": datetime.fromtimestamp(t, UTC).strftime(
                "%Y-%m-%d %H:%M:%S"),
            "probe_cc": "KZ", "probe_asn": f"AS{asn}", "input": None,
            "report_id": f"{t}_{asn}_{test}", "test_keys": keys}


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("e2e")
    docs = []
    for h in range(DAYS * 24):
        if BLACKOUT[0] <= h < BLACKOUT[1]:
            continue
        for asn in ASNS:
            for test in ("telegram", "whatsapp", "signal", "facebook_messenger"):
                for k in range(2):
                    blocked = test in ("telegram", "whatsapp") and BLOCK[0] <= h < BLOCK[1]
                    docs.append(measurement(test, T0 + h * H + 1200 * k + asn % 900, asn,
                                            blocked))
    f = tmp / "kz.jsonl.gz"
    f.write_bytes(gzip.compress("".join(json.dumps(d) + "\n" for d in docs).encode()))
    store = tmp / "s.duckdb"
    for args in (("ooni", "import", f), ("detect",)):
        res = run(*args, "--store", store)
        assert res.exit_code == 0, res.output
    res = run("events", "--format", "json", "--store", store)
    assert res.exit_code == 0, res.output
    out: list[dict[str, Any]] = json.loads(res.output)
    return out


def _iso(hour: int) -> str:
    return datetime.fromtimestamp(T0 + hour * H, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_platform_block_names_the_blocked_platforms_and_times(
        events: list[dict[str, Any]]) -> None:
    blocks = [e for e in events if e["kind"] == "platform-block"]
    national = [e for e in blocks if e["entity_type"] == "country"]
    assert len(national) == 1, blocks
    ev = national[0]
    assert {s["signal"] for s in ev["signals"]} == {"platform:telegram", "platform:whatsapp"}
    assert ev["start"] == _iso(BLOCK[0])
    assert _iso(BLOCK[1]) <= ev["end"] <= _iso(BLOCK[1] + 2)
    named = {s["signal"] for e in blocks for s in e["signals"]}
    assert named == {"platform:telegram", "platform:whatsapp"}  # never signal or facebook
    assert {e["entity_code"] for e in blocks} == {"KZ", *map(str, ASNS)}
    # the mechanism of the blocked tests (TCP resets here) is named per platform
    mech = ev["assessment"]["mechanisms"]
    assert set(mech) == {"telegram", "whatsapp"}
    assert all(set(m) == {"tcp"} and min(m.values()) > 0 for m in mech.values()), mech
    assert "evidence.platform-mechanisms" in ev["rules"]


def test_blackout_is_a_volume_collapse(events: list[dict[str, Any]]) -> None:
    collapse = [e for e in events if any(s["signal"] == "ooni-volume" for s in e["signals"])]
    # the country, and (count-aware detectors judge 8 tests an hour) each of its silent ASes
    national = [e for e in collapse if e["entity_type"] == "country"]
    assert len(national) == 1 and national[0]["entity_code"] == "KZ"
    assert {e["entity_code"] for e in collapse} <= {"KZ", *map(str, ASNS)}
    assert all(e["kind"] != "platform-block" for e in collapse)
    assert national[0]["start"] == _iso(BLACKOUT[0])
