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


# -- a surge with no platform-block event is an event of its own (event.circumvention-demand)
DEMAND = "event.circumvention-demand"
D0 = 1_635_724_800  # 2021-11-01 00:00 UTC: the files' first day
N_DAYS = 76  # to 2022-01-15
SURGE_DAY = 64  # 2022-01-04
CUT = (65, 70)  # KG: Tor users and connectivity collapse together, days 65-69
BASE = {"kz": 1800.0, "uz": 2600.0, "kg": 900.0}


def _tor_files(tmp: Path, days: range, seed: int) -> tuple[Path, Path]:
    """Tor Metrics relay and bridge CSVs (the layout metrics.torproject.org serves): daily
    estimates with seeded day-to-day noise (lognormal, sd 0.12, and a weekend dip) for
    three countries; KZ 10x its base on one day; KG at 4 % during its cut."""
    rng = np.random.default_rng(seed)
    relay, bridge = [], []
    for d in range(N_DAYS):
        day = datetime.fromtimestamp(D0 + d * DAY, UTC)
        week = 0.93 if day.weekday() >= 5 else 1.0
        for cc, base in BASE.items():
            users = base * week * float(rng.lognormal(0.0, 0.12))
            if cc == "kz" and d == SURGE_DAY:
                users = 10 * base
            if cc == "kg" and CUT[0] <= d < CUT[1]:
                users = 0.04 * base
            low, up = round(users * 0.8), round(users * 1.25)
            if d in days:
                relay.append(f"{day:%Y-%m-%d},{cc},{round(users)},{low},{up},93")
                bridge.append(f"{day:%Y-%m-%d},{cc},"
                              f"{round(base / 6 * float(rng.lognormal(0.0, 0.1)))},90")
    r, b = tmp / f"relay-{days.start}.csv", tmp / f"bridge-{days.start}.csv"
    r.write_text("# (c) The Tor Project, Inc. Licensed under CC BY 3.0 US.\n"
                 "# Source: https://metrics.torproject.org/userstats-relay-country.csv\n"
                 "date,country,users,lower,upper,frac\n" + "\n".join(relay) + "\n")
    b.write_text("date,country,users,frac\n" + "\n".join(bridge) + "\n")
    return r, b


def _connectivity(tmp: Path) -> Path:
    """KG's hourly active-probing count (seeded noise), 2 % of it during the cut."""
    rng = np.random.default_rng(5)
    rows = ["time,entity_type,entity_code,signal,value"]
    for h in range(N_DAYS * 24):
        v = rng.poisson(400)
        if CUT[0] * 24 + 6 <= h < CUT[1] * 24:
            v = rng.poisson(8)
        rows.append(f"{D0 + h * H},country,KG,probing,{v}")
    f = tmp / "kg-probing.csv"
    f.write_text("\n".join(rows) + "\n")
    return f


def _events(store: Path) -> list[dict[str, Any]]:
    res = run("events", "--format", "json", "--store", store)
    assert res.exit_code == 0, res.output
    out: list[dict[str, Any]] = json.loads(res.output)
    return out


@pytest.fixture(scope="module")
def demand_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("demand")
    store = tmp / "s.duckdb"
    for args in (("tor", "import", *_tor_files(tmp, range(N_DAYS), 11)),
                 ("series", "import", _connectivity(tmp)), ("detect",)):
        res = run(*args, "--store", store)
        assert res.exit_code == 0, res.output
    return store


@pytest.fixture(scope="module")
def demand(demand_store: Path) -> list[dict[str, Any]]:
    return _events(demand_store)


def test_a_surge_without_a_block_is_one_event_dated_to_its_day(
        demand: list[dict[str, Any]]) -> None:
    kz = [e for e in demand if e["entity_code"] == "KZ"]
    assert len(kz) == 1, kz
    (ev,) = kz
    assert ev["kind"] == "platform-block" and ev["scope"] == "national"
    assert DEMAND in ev["rules"] and RULE in ev["rules"]
    assert ev["start"] == "2022-01-04T00:00:00Z" and ev["end"] == "2022-01-05T00:00:00Z"
    assert 0.1 <= ev["confidence"] <= 0.5  # one indirect source: low-moderate
    found = ev["assessment"]["circumvention"]
    assert [s["day"] for s in found["surges"]["tor-users"]] == [D0 + SURGE_DAY * DAY]
    assert "tor-bridge-users" not in found["surges"]
    assert "Tor use from Kazakhstan rose 10x on 4 January 2022" in found["summary"]


def test_no_event_on_ordinary_fluctuation(demand: list[dict[str, Any]]) -> None:
    assert [e for e in demand if e["entity_code"] == "UZ"] == []


def test_a_collapse_with_a_connectivity_cut_is_not_a_surge(
        demand: list[dict[str, Any]]) -> None:
    kg = [e for e in demand if e["entity_code"] == "KG"]
    assert kg, "the cut must be detected"
    assert all(e["kind"] != "platform-block" and DEMAND not in e["rules"] for e in kg), kg
    cut = [e for e in kg if e["start"] <= "2022-01-06T06:00:00Z" <= (e["end"] or "9")]
    assert cut and {"probing", "tor-users"} <= {s["signal"] for e in cut
                                               for s in e["signals"]}, kg


def test_the_surge_found_day_by_day_is_the_same_event(tmp_path: Path,
                                                      demand: list[dict[str, Any]]) -> None:
    """Tor Metrics publishes a day at a time: the event found by imports and detection
    runs before and after the surge day is the one found at once."""
    store = tmp_path / "s.duckdb"
    for days in (range(SURGE_DAY), range(SURGE_DAY, SURGE_DAY + 1), range(SURGE_DAY + 1,
                                                                          N_DAYS)):
        res = run("tor", "import", *_tor_files(tmp_path, days, 11), "--store", store)
        assert res.exit_code == 0, res.output
        res = run("detect", "--store", store)
        assert res.exit_code == 0, res.output
    key = ("entity_code", "kind", "start", "end", "rules", "confidence")
    once = [{k: e[k] for k in key} for e in demand if e["entity_code"] in ("KZ", "UZ")]
    daily = [{k: e[k] for k in key} for e in _events(store) if e["entity_code"] != "KG"]
    assert daily == once


def test_a_block_found_later_takes_the_surge_as_its_evidence(tmp_path: Path) -> None:
    """Tor data first (a 6x day: an event of its own), OONI's block of that day imported
    afterwards: the next detection replaces the demand event by the block, which names
    the surge as its evidence (no second event for one surge)."""
    relay = tmp_path / "userstats-relay-country.csv"
    relay.write_text("date,country,users,lower,upper,frac\n" + "\n".join(
        f"{_day(d)},kz,{6000 if d == 5 else 1000 + (d % 5) * 40},,,93"
        for d in range(-42, DAYS + 1)) + "\n")
    docs = [telegram(T0 + h * H + 1200 * k + asn % 900, asn, BLOCK[0] <= h < BLOCK[1])
            for h in range(DAYS * 24) for asn in ASNS for k in range(2)]
    ooni = tmp_path / "kz.jsonl"
    ooni.write_text("".join(json.dumps(d) + "\n" for d in docs))
    store = tmp_path / "s.duckdb"
    seen = []
    for args in (("tor", "import", relay), ("ooni", "import", ooni)):
        for step in (args, ("detect",)):
            res = run(*step, "--store", store)
            assert res.exit_code == 0, res.output
        seen.append([e for e in _events(store) if e["entity_code"] == "KZ"])
    (alone,), after = seen
    assert DEMAND in alone["rules"] and alone["start"] == f"{_day(5)}T00:00:00Z"
    assert after and all(DEMAND not in e["rules"] for e in after), after
    block = [e for e in after if RULE in e["rules"]]
    assert [s["day"] for s in block[0]["assessment"]["circumvention"]["surges"]
            ["tor-users"]] == [T0 + 5 * DAY]


def test_the_demand_events_sentence_says_what_rose_and_why() -> None:
    from netvigil.events.classification import demand_events
    from netvigil.reports.netblocks import sentence

    vals = np.full(40, 1500.0)
    vals[36] = 15000.0
    kz = EntityRef(EntityType.COUNTRY, "KZ")
    (ev,) = demand_events(kz, "Kazakhstan", {"tor-users": Series(kz, "tor-users", T0, DAY,
                                                                   vals)}, [], -(2**62))
    assert sentence(ev) == ("Tor use from Kazakhstan rose 10x on 6 February 2022: "
                            "circumvention demand, a sign of blocking.")
    assert ev.end == T0 + 37 * DAY


def test_the_return_after_a_long_collapse_is_no_surge_a_surge_after_it_is() -> None:
    """A 36-day collapse (Sudan's 2019 mobile shutdown) fills more than the baseline's
    28 days: the days back to ordinary use must not read as a surge against it."""
    rng = np.random.default_rng(3)
    vals = 1000.0 * rng.lognormal(0.0, 0.1, 120)
    vals[30:66] = 40.0 * rng.lognormal(0.0, 0.1, 36)
    vals[100] = 4000.0
    s = Series(EntityRef(EntityType.COUNTRY, "SD"), "tor-users", T0, DAY, vals)
    assert [t for t, _r in surges(s)] == [T0 + 100 * DAY]


def test_a_block_seen_on_one_network_only_explains_the_surge(tmp_path: Path) -> None:
    """A block measured on one AS (its platform series falls; the country has none): the
    country's surge of that day is the AS block's evidence, not an event of its own."""
    d_block = SURGE_DAY  # the AS's telegram tests fail all of 4 Jan 2022
    rng = np.random.default_rng(9)
    rows = ["time,entity_type,entity_code,signal,value,entity_name,parent"]
    for h in range((d_block - 20) * 24, (d_block + 4) * 24):
        v = 0.0 if d_block * 24 <= h < (d_block + 1) * 24 else 95 + 3 * rng.standard_normal()
        rows.append(f"{D0 + h * H},asn,9198,platform:telegram,{v:.1f},Kazakhtelecom,KZ")
    plat = tmp_path / "as-telegram.csv"
    plat.write_text("\n".join(rows) + "\n")
    store = tmp_path / "s.duckdb"
    for args in (("tor", "import", *_tor_files(tmp_path, range(N_DAYS), 11)),
                 ("series", "import", plat), ("detect",)):
        res = run(*args, "--store", store)
        assert res.exit_code == 0, res.output
    got = _events(store)
    asn = [e for e in got if e["entity_code"] == "9198" and e["kind"] == "platform-block"]
    assert asn and RULE in asn[0]["rules"], got
    assert [e for e in got if e["entity_code"] == "KZ"] == []


def test_the_incident_report_calls_a_surge_a_rise(demand_store: Path,
                                                  demand: list[dict[str, Any]]) -> None:
    """The facts ``netvigil report`` lays out (its chart and files are not needed)."""
    from netvigil.reports.incident import build_report
    from netvigil.store.duck import Store

    (ev,) = [e for e in demand if e["entity_code"] == "KZ"]
    with Store(demand_store, read_only=True) as store:
        rep = build_report(store, ev["id"])
    assert rep.headline.startswith("Kazakhstan: circumvention demand from 00:00 UTC on 4 Jan")
    assert rep.summary.startswith("Tor use from Kazakhstan rose 10x on 4 January 2022")
    assert [t.what for t in rep.transitions] == ["rose to"]


def test_report_of_a_demand_event_claims_no_connectivity_loss(
        demand_store: Path, demand: list[dict[str, Any]]) -> None:
    """The incident report's severity row: a Tor surge is not a loss of connectivity."""
    from netvigil.reports.incident import build_report
    from netvigil.reports.render import blocks
    from netvigil.store.duck import Store

    (ev,) = [e for e in demand if e["entity_code"] == "KZ"]
    with Store(demand_store, read_only=True) as store:
        rep = build_report(store, ev["id"])
    rows = dict(r for b in blocks(rep) if b.kind == "table" for r in b.rows if len(r) == 2)
    assert "circumvention demand" in rows["Severity"]
    assert "connectivity lost" not in rows["Severity"]
