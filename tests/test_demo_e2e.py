"""End to end: the Kazakhstan 2022 RECONSTRUCTION's facts through the one pipeline, the store,
detection and events; detected events checked against the scenario's phases (anchors §8.1)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from netvigil.model import EntityRef, EntityType, Event, EventKind, Scope, SourceFamily
from netvigil.model import signal_kind as kind_of
from netvigil.reports.demo import DemoResult

pytestmark = pytest.mark.slow

KZ = EntityRef(EntityType.COUNTRY, "KZ")
ONE_BIN = 600


def ts(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


@pytest.fixture(scope="module")
def demo(demo_result: DemoResult) -> DemoResult:
    """The session's demo run (tests/conftest.py ``demo_built``): read it, never change it."""
    return demo_result


def evidence(e: Event, signal: str) -> list[int]:
    return [s.start for s in e.signals if s.signal == signal]


def blackout_truth(demo: DemoResult) -> int:
    return min(t.start for t in demo.truth if t.entity == KZ and t.kind is EventKind.OUTAGE)


def test_national_blackout_detected_within_one_bin(demo: DemoResult) -> None:
    truth = blackout_truth(demo)
    assert truth == ts("2022-01-05T10:45")
    national = [e for e in demo.events if e.entity == KZ and e.kind is EventKind.OUTAGE]
    hits = [e for e in national if any(abs(s - truth) <= ONE_BIN
                                       for s in evidence(e, "probing"))]
    assert hits, [(e.start, e.signals) for e in national]
    assert all(e.scope is Scope.NATIONAL for e in hits)
    probing = next(s for s in hits[0].signals if s.signal == "probing")
    assert probing.min_ratio < 0.05  # ~2% of ordinary levels
    assert probing.worst_level == "critical"


def test_national_event_itself_starts_at_blackout(demo: DemoResult) -> None:
    truth = blackout_truth(demo)
    national = [e for e in demo.events if e.entity == KZ and e.kind is EventKind.OUTAGE]
    assert any(abs(e.start - truth) <= ONE_BIN for e in national)


def test_bgp_does_not_alert_on_the_country(demo: DemoResult) -> None:
    for e in demo.events:
        if e.entity == KZ:
            assert not any(kind_of(s.signal).family is SourceFamily.BGP for s in e.signals)
    bgp = next(s for s in demo.national if s.signal == "bgp")
    assert bgp.values.size == 5184 and float(np.nanmin(bgp.values)) >= 0.99 * float(
        np.nanmedian(bgp.values))  # the churn at 10:45 never looks like a withdrawal


def test_mobile_operators_cut_on_january_4_evening(demo: DemoResult) -> None:
    lo, hi = ts("2022-01-04T15:50"), ts("2022-01-04T18:00")
    for asn in ("29355", "21299"):
        ref = EntityRef(EntityType.ASN, asn)
        starts = [s for e in demo.events if e.entity == ref for s in evidence(e, "probing")]
        assert any(lo <= s <= hi for s in starts), (asn, starts)
        assert all(e.scope is Scope.NETWORK for e in demo.events if e.entity == ref)
    fixed = EntityRef(EntityType.ASN, "9198")
    assert not any(s < ts("2022-01-05T10:30") for e in demo.events if e.entity == fixed
                   for s in evidence(e, "probing"))


def test_platform_blocks_from_january_4(demo: DemoResult) -> None:
    start = ts("2022-01-04T05:00")
    for plat in ("whatsapp", "telegram", "signal"):
        starts = [s for e in demo.events if e.entity == KZ
                  for s in evidence(e, f"platform:{plat}")]
        assert any(abs(s - start) <= 3600 for s in starts), (plat, starts)


def test_datacentres_back_before_home_users(demo: DemoResult) -> None:
    back = next(t.start for t in demo.reconstruction.restorations
                if t.phases == ("datacentre-first",))
    dc = EntityRef(EntityType.ASN, "48716")  # PS Internet Company, a data-centre AS
    ends = [e.end for e in demo.events if e.entity == dc and e.end is not None
            and e.kind is EventKind.OUTAGE and e.start >= ts("2022-01-05T10:00")]
    assert ends and abs(max(ends) - back) <= 2 * ONE_BIN, [(e.start, e.end) for e in
                                                          demo.events if e.entity == dc]
    home = [e.end for e in demo.events if e.entity == KZ and e.kind is EventKind.OUTAGE
            and e.end is not None]
    assert max(home) > max(ends) + 3 * 86_400  # home users: 11 January


def test_recovery_on_january_11(demo: DemoResult) -> None:
    end = next(t.end for t in demo.truth if t.phases == ("national-blackout",))
    national = [e for e in demo.events if e.entity == KZ and e.kind is EventKind.OUTAGE]
    last = max(national, key=lambda e: e.start)
    assert last.end is not None and abs(last.end - end) <= 3 * ONE_BIN


def test_replay_counts_and_stored_entities(demo: DemoResult) -> None:
    # (that ASes come from the announced routes is shown without any AS table in
    # test_kz2022_generator.py::test_blocks_reach_ases_only_through_the_announced_routes)
    stored = set(demo.stored_entities)
    assert {EntityRef(EntityType.ASN, a) for a in ("9198", "29355", "21299", "48716")} <= stored
    assert demo.replay.bgp_snapshots < demo.replay.bgp_bins  # unchanged bins re-stamped
    assert demo.replay.probe_rounds == 2592 and demo.replay.platform_hours == 432


def test_report_folder(demo: DemoResult) -> None:
    names = {p.name for p in demo.files}
    assert {"timeline.txt", "events.json", "events.csv", "sentences.md", "README.md",
            "truth.json"} <= names
    png = next(p for p in demo.files if p.suffix == ".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    for name in ("timeline.txt", "sentences.md", "README.md", "events.json", "events.csv"):
        assert "RECONSTRUCTION" in (demo.out_dir / name).read_text(encoding="utf-8").upper()
    text = (demo.out_dir / "sentences.md").read_text(encoding="utf-8")
    assert "National connectivity in Kazakhstan fell to 2% of ordinary levels at 10:40 UTC " \
           "on 5 January" in text
    truth = json.loads((demo.out_dir / "truth.json").read_text(encoding="utf-8"))
    assert truth["truth"][0]["phases"] and "level" in truth["truth"][0]
    assert demo.timings["total"] > 0  # recorded; speed is measured in benchmarks/, never here


def test_cli_demo_prints_banner_table_sentences_and_folder(tmp_path: Path) -> None:
    from netvigil.cli.main import cli

    out = tmp_path / "rep"
    res = CliRunner().invoke(cli, ["demo", "--out", str(out), "--store",
                                   str(tmp_path / "s.duckdb")], env={"NETVIGIL_STORE": ""})
    assert res.exit_code == 0, res.output
    assert "RECONSTRUCTION" in res.output
    assert "start (UTC)" in res.output and "National connectivity in Kazakhstan" in res.output
    assert f"Report folder: {out.resolve()}" in res.output
    assert (out / "events.json").exists() and (tmp_path / "s.duckdb").exists()
