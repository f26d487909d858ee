"""End to end: run the Kazakhstan 2022 RECONSTRUCTION through the real path and check the
detected events against the reconstruction's own truth (anchors §8.1)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from netvigil.model import EntityRef, EntityType, Event, EventKind, Scope, SourceFamily
from netvigil.model import signal_kind as kind_of
from netvigil.pipeline.demo import DemoResult, run_demo
from netvigil.store.duck import Store

pytestmark = pytest.mark.slow

KZ = EntityRef(EntityType.COUNTRY, "KZ")
ONE_BIN = 600


def ts(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoResult]:
    base = tmp_path_factory.mktemp("kz2022")
    with Store(base / "store.duckdb") as store:
        yield run_demo(store, base / "report")


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
    assert any(s.signal == "bgp" and s.entity == KZ for s in demo.series)


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
    uni = demo.facts.universe
    dc = {str(a) for a, c in uni.as_class.items() if c == "datacentre"}
    ends = [e.end for e in demo.events if e.entity.code in dc and e.end is not None
            and e.entity.type is EntityType.ASN and e.start >= ts("2022-01-05T10:00")]
    assert ends and max(ends) <= ts("2022-01-07T02:00")


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
    assert demo.timings["total"] < 120


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
