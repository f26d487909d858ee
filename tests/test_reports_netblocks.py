"""NetBlocks-style sentences (anchors §3.3), the timeline table and the chart."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from netvigil.model import (
    EntityRef,
    EntityType,
    Event,
    EventKind,
    EventStatus,
    Scope,
    Series,
    SignalEvidence,
)
from netvigil.reports.chart import render
from netvigil.reports.netblocks import percent, sentence
from netvigil.reports.timeline import render_table


def ts(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def ev(signal: str, start: str, end: str | None, ratio: float) -> SignalEvidence:
    return SignalEvidence(signal, "ioda.median", ts(start), None if end is None else ts(end),
                          100.0, ratio, ratio * 100, 100.0, "critical")


def event(ref: EntityRef, name: str, kind: EventKind, *evs: SignalEvidence) -> Event:
    start = min(e.start for e in evs)
    ends = [e.end for e in evs]
    end = None if None in ends else max(e for e in ends if e is not None)
    return Event("x", ref, name, start, end,
                 EventStatus.ONGOING if end is None else EventStatus.ENDED,
                 Scope.for_entity(ref), kind, 1.0, 0.6, min(e.min_ratio for e in evs), evs, ())


KZ = EntityRef(EntityType.COUNTRY, "KZ")
KCELL = EntityRef(EntityType.ASN, "29355")


def test_national_sentence() -> None:
    e = event(KZ, "Kazakhstan", EventKind.OUTAGE,
              ev("probing", "2022-01-05T10:45", "2022-01-06T01:00", 0.0204))
    assert sentence(e, reconstruction=True) == (
        "National connectivity in Kazakhstan fell to 2% of ordinary levels at 10:45 UTC on "
        "5 January, recovering at 01:00 UTC on 6 January (reconstruction).")


def test_network_sentence_and_ongoing() -> None:
    e = event(KCELL, "Kcell", EventKind.OUTAGE, ev("probing", "2022-01-04T16:00", None, 0.51))
    assert sentence(e) == ("Connectivity on Kcell (AS29355) fell to 51% of ordinary levels at "
                           "16:00 UTC on 4 January.")


def test_platform_sentence() -> None:
    e = event(KZ, "Kazakhstan", EventKind.PLATFORM_BLOCK,
              ev("platform:whatsapp", "2022-01-04T05:00", "2022-01-11T02:00", 0.02))
    assert sentence(e, reconstruction=True) == (
        "WhatsApp became unreachable in Kazakhstan at 05:00 UTC on 4 January, with 2% of tests "
        "reaching it (reconstruction).")
    two = event(KZ, "Kazakhstan", EventKind.PLATFORM_BLOCK,
                ev("platform:telegram", "2022-01-04T05:00", None, 0.0),
                ev("platform:signal", "2022-01-04T06:00", None, 0.03))
    assert sentence(two).startswith("Telegram and Signal became unreachable in Kazakhstan at "
                                    "05:00 UTC on 4 January, with under 1% of tests reaching them")


def test_merged_event_speaks_for_the_data_plane() -> None:
    e = event(KZ, "Kazakhstan", EventKind.OUTAGE,
              ev("platform:whatsapp", "2022-01-04T05:00", "2022-01-11T02:00", 0.0),
              ev("bgp", "2022-01-05T10:45", "2022-01-05T11:00", 0.98),
              ev("probing", "2022-01-05T10:40", "2022-01-11T02:40", 0.02))
    text = sentence(e)
    assert text.startswith("National connectivity in Kazakhstan fell to 2% of ordinary levels "
                           "at 10:40 UTC on 5 January")
    assert "after WhatsApp became unreachable from 05:00 UTC on 4 January" in text


def test_routing_sentence_and_percent() -> None:
    e = event(KZ, "Egypt", EventKind.ROUTING, ev("bgp", "2011-01-27T22:30", None, 0.07))
    assert sentence(e).startswith("Routes to networks in Egypt were withdrawn: BGP visibility "
                                  "fell to 7% of ordinary levels at 22:30 UTC on 27 January")
    assert percent(0.004) == "under 1%" and percent(float("nan")) == "an unknown share"


def test_timeline_table_and_chart(tmp_path: Path) -> None:
    e = event(KZ, "Kazakhstan", EventKind.OUTAGE,
              ev("probing", "2022-01-05T10:40", "2022-01-06T01:00", 0.02))
    table = render_table([e])
    assert "2022-01-05 10:40" in table and "national" in table and "2.0" in table
    # the readable severity (98 % lost), never IODA's raw score product
    assert "lost %" in table and " 98 " in table and "e+" not in table
    t0 = ts("2022-01-01T00:00")
    vals = np.full(600, 100.0)
    vals[400:500] = 2.0
    vals[10] = np.nan
    s = Series(KZ, "probing", t0, 600, vals)
    png = render([s], [e], tmp_path / "c.png", title="t", label="RECONSTRUCTION",
                 baseline_until=t0 + 300 * 600)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_chart_ticks_follow_the_span_hours_to_years(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """An event over a backfilled archive spans years (points in 2000 and 2016): the date
    axis picks its ticks for the span instead of asking matplotlib for one every two days
    (3,336 of them, past its MAXTICKS limit, 11 s to draw)."""
    e = event(KZ, "Kazakhstan", EventKind.OUTAGE, ev("bgp", "2000-03-25T03:45", None, 0.02))
    t0 = ts("2000-03-24T00:00")
    vals = np.full(int((ts("2016-08-11T16:00") - t0) // 300), np.nan)
    vals[:300] = 100.0
    vals[-2:] = 2.0
    with caplog.at_level("INFO", logger="matplotlib"):
        for n, step in ((len(vals), 300), (600, 60)):  # 16 years; 10 hours
            png = render([Series(KZ, "bgp", t0, step, vals[:n])], [e], tmp_path / f"{n}.png",
                         title="t", label="", baseline_until=ts("2000-03-25T03:45"))
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [r for r in caplog.records if "MAXTICKS" in r.getMessage()]
