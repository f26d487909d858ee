"""Incident reports (issue 10, deliverable 4): transitions and restorations read from a
hand-made series; the report on the demo store in three formats, its numbers equal to the
API's for the same event."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from netvigil.cli.common import open_store
from netvigil.model import EntityRef, EntityType, Event, EventKind, EventStatus, Scope, Series
from netvigil.reports.incident import build_report, transitions
from netvigil.reports.render import blocks, to_html, to_markdown
from netvigil.serve.app import create_app
from netvigil.store.duck import Store

STEP = 600
T0 = 1_641_000_000 - 1_641_000_000 % STEP
KZ = EntityRef(EntityType.COUNTRY, "KZ")
CLI = [sys.executable, "-c", "from netvigil.cli.main import main; main()"]


def _event(start: int, end: int) -> Event:
    return Event(id="x", entity=KZ, entity_name="Kazakhstan", start=start, end=end,
                 status=EventStatus.ENDED, scope=Scope.NATIONAL, kind=EventKind.OUTAGE,
                 score=1.0, confidence=0.9, min_ratio=0.02, signals=(), rules=())


def _series(levels: list[float]) -> tuple[Series, int]:
    week = [100.0] * (7 * 144)
    values = np.array(week + [100.0 * v for v in levels] + [100.0] * 10)
    start = T0 + STEP * len(week)
    return Series(KZ, "probing", T0, STEP, values), start


def test_a_cut_with_one_restoration_and_a_one_bin_blip() -> None:
    levels = [0.02] * 12 + [0.5] + [0.02] * 5 + [0.95] * 6 + [0.03] * 12
    series, start = _series(levels)
    end = start + STEP * len(levels)
    trans, rest = transitions(series, _event(start, end), start, end)
    assert [t.what for t in trans] == ["fell to", "restored to", "fell again to"]
    assert trans[0].time == start and trans[0].level == pytest.approx(0.02)
    assert len(rest) == 1
    assert rest[0].start == start + 18 * STEP and rest[0].hours == pytest.approx(1.0)
    assert rest[0].level == pytest.approx(0.95)


def test_a_final_recovery_is_not_a_restoration() -> None:
    levels = [0.02] * 12 + [0.6] * 4 + [1.0] * 4
    series, start = _series(levels)
    end = start + STEP * len(levels)
    trans, rest = transitions(series, _event(start, end), start, end)
    assert [t.what for t in trans] == ["fell to", "partial restoration to", "restored to"]
    assert rest == []


def test_missing_bins_do_not_make_transitions() -> None:
    levels = [0.02] * 6 + [float("nan")] * 6 + [0.02] * 6
    series, start = _series(levels)
    end = start + STEP * len(levels)
    trans, rest = transitions(series, _event(start, end), start, end)
    assert [t.what for t in trans] == ["fell to"] and rest == []


@pytest.fixture(scope="module")
def national(demo_store: Path) -> Event:
    with Store(demo_store, read_only=True) as store:
        found = [e for e in store.read_events(KZ) if e.kind is EventKind.OUTAGE]
    return min(found, key=lambda e: e.start)


def test_demo_report_tells_the_kazakhstan_story(demo_store: Path, national: Event) -> None:
    with Store(demo_store, read_only=True) as store:
        rep = build_report(store, national.id, now=national.start + 30 * 86400)
    assert rep.reconstruction
    assert rep.headline.startswith("Kazakhstan: near-total blackout from 10:40 UTC on "
                                   "5 January 2022")
    assert rep.transitions[0].what == "fell to" and rep.transitions[0].level < 0.1
    assert rep.restorations, "the reconstruction restores connectivity for a few hours"
    assert any(p.kind is EventKind.PLATFORM_BLOCK and p.start < national.start
               for p in rep.platforms), "messaging apps were blocked before the cut"
    mobile = {e.entity.code for e in rep.affected if e.entity.type is EntityType.ASN}
    assert {"29355", "21299", "48503"} <= mobile
    assert rep.impact is not None and rep.impact.people_affected is not None
    assert 10e6 < rep.impact.people_affected < 19e6
    assert {p.source for p in rep.impact.published} == {"Top10VPN", "NetBlocks (COST)"}
    text = to_markdown(rep, "chart.png")
    assert "RECONSTRUCTION" in text and "## Restorations" in text and "Top10VPN" in text
    assert "e+" not in text, "no raw IODA score product where people read"
    html = to_html(rep, b"\x89PNG")
    assert html.count("<table>") == sum(b.kind == "table" for b in blocks(rep))


def test_report_cli_writes_three_formats_matching_the_api(demo_store: Path, national: Event,
                                                          tmp_path: Path) -> None:
    for fmt in ("md", "html", "pdf"):
        out = tmp_path / f"r.{fmt}"
        run = subprocess.run(CLI + ["--wait", "30", "report",
                              "--store", str(demo_store), national.id, "--format", fmt,
                              "--out", str(out)], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        assert out.stat().st_size > 1000
    assert (tmp_path / "r.png").exists() and (tmp_path / "r.pdf").read_bytes()[:5] == b"%PDF-"
    md = (tmp_path / "r.md").read_text()
    with TestClient(create_app(demo_store, open_store=open_store)) as client:
        body = client.get("/api/v1/events", params={"entity_type": "country",
                                                    "entity_code": "KZ"}).json()
    rows = body["events"] if isinstance(body, dict) else body
    api = next(r for r in rows if r["id"] == national.id)
    start = api["start"].replace("T", " ")[:16] + " UTC"
    end = api["end"].replace("T", " ")[:16] + " UTC"
    assert f"| This event | {start} to {end}" in md
    assert f"{round(api['min_ratio'] * 100):.0f}% of ordinary levels" in md


def test_unknown_event_id_is_one_line_error(demo_store: Path, tmp_path: Path) -> None:
    run = subprocess.run(CLI + ["report", "--store",
                          str(demo_store), "nope", "--out", str(tmp_path / "x.md")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert run.stderr.strip().count("\n") == 0 and "no event with id 'nope'" in run.stderr
    assert not (tmp_path / "x.md").exists()
