"""Events from alerts (ioda-api OutagesEventsService): score, merge, product, scope, kind,
confidence, ids and CODF."""

from __future__ import annotations

import numpy as np
import pytest

from netvigil.events import CODF_KEYS, build_events, to_codf, to_codf_per_signal
from netvigil.events.serialize import event_to_dict, events_to_csv
from netvigil.model import (
    Alert,
    EntityRef,
    EventKind,
    EventStatus,
    Level,
    Observed,
    Scope,
    make_ref,
)
from test_detect_support import KZ, T0, series

C, W, N = Level.CRITICAL, Level.WARNING, Level.NORMAL


def alert(signal: str, t: int, level: Level, value: float = 0.0, history: float = 1000.0,
          entity: EntityRef = KZ, method: str = "ioda.median") -> Alert:
    cond = {C: "< 0.5", W: "< 0.8", N: "normal"}[level]
    return Alert(entity, signal, T0 + t, level, value, history, method, cond)


def test_score_is_drop_percent_times_minutes_on_a_hand_computed_case() -> None:
    # bins at T0-1200 .. T0+2400, step 600 (10 minutes)
    s = series("probing", [1000, 1000, 0, 500, 600, np.nan, 1000], start=T0 - 1200)
    alerts = [alert("probing", 0, C, 0, 1000), alert("probing", 1200, W, 600, 800),
              alert("probing", 2400, N, 1000, 1000)]
    (ev,) = build_events(KZ, alerts, {"probing": s})
    # segment 1 (h=1000): 0 -> 100 % x 10 min, 500 -> 50 % x 10 min = 1500
    # segment 2 (h=800): 600 -> 25 % x 10 min = 250; the NaN bin adds nothing
    assert ev.signals[0].score == pytest.approx(1750.0)
    assert ev.score == pytest.approx(1750.0)
    assert (ev.start, ev.end, ev.status) == (T0, T0 + 2400, EventStatus.ENDED)
    assert ev.min_ratio == 0.0
    assert ev.signals[0].worst_level == "critical"
    assert (ev.signals[0].min_value, ev.signals[0].history_value) == (0.0, 1000.0)


def test_observed_bins_score_as_the_grid_series_with_its_gaps() -> None:
    """What the runner passes (only the observed bins, years of gaps left out) gives the
    events a grid series gives, segment bounds included (a bin at a segment's end belongs
    to the next segment)."""
    s = series("probing", [1000, 1000, 0, 500, 600, np.nan, 1000, 700], start=T0 - 1200)
    obs = Observed.of(s)
    assert len(obs) == 7 and obs.step == 600
    assert obs.between(T0, T0 + 1200).tolist() == [0.0, 500.0]
    assert obs.between(T0 + 1, T0 + 1200).tolist() == [500.0]
    assert obs.between(T0 + 2400).tolist() == [1000.0, 700.0]
    assert obs.between(T0 + 600, T0 + 600).size == 0
    alerts = [alert("probing", 0, C, 0, 1000), alert("probing", 1200, W, 600, 800),
              alert("probing", 3000, N, 1000, 1000), alert("probing", 3000 + 600, C, 0, 1000)]
    assert build_events(KZ, alerts, {"probing": obs}) == build_events(KZ, alerts,
                                                                     {"probing": s})
    far = Observed(np.array([T0, T0 + 14 * 365 * 86_400]), np.array([0.0, 1000.0]), 300)
    (ev,) = build_events(KZ, [alert("probing", 0, C, 0, 1000)], {"probing": far})
    assert ev.end is None and ev.score == pytest.approx(100.0 * 5)  # the one 0-bin


def test_drop_percent_divides_by_the_larger_of_history_and_value() -> None:
    s = series("probing", [1250.0], start=T0)
    alerts = [alert("probing", 0, C, 1250, 1000), alert("probing", 600, N, 1000, 1000)]
    (ev,) = build_events(KZ, alerts, {"probing": s})
    assert ev.score == pytest.approx(20.0 * 10)  # |1000-1250|/1250 = 20 % for 10 minutes


def test_without_a_series_the_alert_value_scores_the_segment() -> None:
    alerts = [alert("probing", 0, C, 0, 1000), alert("probing", 1200, N, 1000, 1000)]
    (ev,) = build_events(KZ, alerts)
    assert ev.score == pytest.approx(100.0 * 20)


def test_cross_signal_score_is_the_product_of_per_signal_maxima() -> None:
    probing = series("probing", [0, 500, 600, np.nan], start=T0)
    bgp = series("bgp", np.zeros(8), step=300, start=T0)
    alerts = [
        alert("probing", 0, C, 0, 1000), alert("probing", 1200, W, 600, 800),
        alert("probing", 2400, N, 1000, 1000),
        alert("bgp", 600, C), alert("bgp", 1200, N, 1000),  # 2 bins x 100 % x 5 min = 1000
        alert("bgp", 1500, C), alert("bgp", 2400, N, 1000),  # 3 bins x 100 % x 5 min = 1500
    ]
    (ev,) = build_events(KZ, alerts, {"probing": probing, "bgp": bgp})
    by = {s.signal: s for s in ev.signals}
    assert by["probing"].score == pytest.approx(1750.0)
    assert by["bgp"].score == pytest.approx(1500.0)  # the maximum of its two events
    assert (by["bgp"].start, by["bgp"].end) == (T0 + 600, T0 + 2400)
    assert ev.score == pytest.approx(1750.0 * 1500.0)
    assert ev.kind is EventKind.ROUTING


def test_platform_block_and_later_blackout_stay_separate_events() -> None:
    # Kazakhstan 2022: messaging blocked from 4 Jan, the network cut on 5 Jan. Merging the two
    # would move the blackout's start back to the block's start.
    alerts = [alert("platform:whatsapp", 0, C), alert("platform:whatsapp", 7200, N, 1000),
              alert("probing", 3600, C), alert("probing", 6000, N, 1000)]
    block, blackout = build_events(KZ, alerts)
    assert (block.kind, block.start) == (EventKind.PLATFORM_BLOCK, T0)
    assert (blackout.kind, blackout.start) == (EventKind.OUTAGE, T0 + 3600)
    assert "merge.separate-platform" in blackout.rules


def test_touching_but_not_overlapping_events_stay_separate() -> None:
    alerts = [alert("probing", 0, C), alert("probing", 1200, N, 1000),
              alert("telescope", 1200, C), alert("telescope", 2400, N, 1000)]
    events = build_events(KZ, alerts)
    assert [e.signals[0].signal for e in events] == ["probing", "telescope"]


def test_ongoing_event_has_no_end_and_overlaps_the_window() -> None:
    s = series("probing", [1000, 0, 0, 0], start=T0 - 600)
    (ev,) = build_events(KZ, [alert("probing", 0, C)], {"probing": s})
    assert ev.end is None and ev.status is EventStatus.ONGOING and ev.duration is None
    assert ev.score == pytest.approx(3 * 100.0 * 10)  # scored to the end of the data
    rec = to_codf(ev, until=T0 + 3600)
    assert rec["overlaps_window"] is True and rec["duration"] == 3600
    assert to_codf(ev)["duration"] is None
    assert event_to_dict(ev)["end"] is None


@pytest.mark.parametrize(
    ("ref", "scope"),
    [(make_ref("country", "KZ"), Scope.NATIONAL), (make_ref("region", "KZ-75"), Scope.REGIONAL),
     (make_ref("asn", "AS9198"), Scope.NETWORK), (make_ref("block", "2.72.0.0/24"),
                                                   Scope.NETWORK)],
)
def test_scope_follows_the_entity_type(ref: EntityRef, scope: Scope) -> None:
    (ev,) = build_events(ref, [alert("probing", 0, C, entity=ref),
                               alert("probing", 600, N, 1000, entity=ref)])
    assert ev.scope is scope


@pytest.mark.parametrize(
    ("signals", "kind", "rule"),
    [
        ([("bgp", C), ("probing", C)], EventKind.ROUTING, "kind.routing"),
        ([("bgp-v6", C)], EventKind.ROUTING, "kind.routing"),
        ([("bgp", W), ("probing", C)], EventKind.OUTAGE, "kind.outage"),
        ([("probing", W)], EventKind.OUTAGE, "kind.outage"),
        ([("platform:whatsapp", C), ("platform:telegram", W)], EventKind.PLATFORM_BLOCK,
         "kind.platform-block"),
        ([("probing-loss", W), ("probing-latency", W)], EventKind.DEGRADATION,
         "kind.degradation"),
        ([("probing-loss", C)], EventKind.OUTAGE, "kind.outage"),
    ],
)
def test_kind_rules(signals: list[tuple[str, Level]], kind: EventKind, rule: str) -> None:
    alerts = []
    for sig, level in signals:
        alerts += [alert(sig, 0, level, method="test.detector"),
                   alert(sig, 1200, N, 1000, method="test.detector")]
    (ev,) = build_events(KZ, alerts)
    assert ev.kind is kind
    assert rule in ev.rules
    assert "test.detector" in ev.rules


@pytest.mark.parametrize(
    ("signals", "confidence"),
    [
        ([("probing", W)], 0.3),
        ([("probing", C)], 0.6),
        ([("probing", C), ("bgp", C)], 0.84),
        ([("probing", C), ("bgp", C), ("telescope", C)], 0.936),
        ([("bgp", C), ("bgp-v6", C)], 0.6),  # one family, not independent
        ([("probing", C), ("bgp", W)], 0.72),
    ],
)
def test_confidence_rises_with_independent_corroboration(
    signals: list[tuple[str, Level]], confidence: float
) -> None:
    alerts = []
    for sig, level in signals:
        alerts += [alert(sig, 0, level), alert(sig, 1200, N, 1000)]
    (ev,) = build_events(KZ, alerts)
    assert ev.confidence == pytest.approx(confidence)
    assert 0.0 <= ev.confidence <= 1.0


def test_event_rules_list_detector_and_rule_ids() -> None:
    alerts = [alert("bgp", 0, C), alert("bgp", 600, N, 1000),
              alert("probing", 0, C), alert("probing", 1200, N, 1000)]
    (ev,) = build_events(KZ, alerts)
    assert ev.rules == ("ioda.median", "ioda.median.bgp", "ioda.median.probing",
                        "kind.routing", "merge.overlap-product", "confidence.noisy-or")


def test_min_ratio_is_the_lowest_across_signals() -> None:
    alerts = [alert("bgp", 0, C, 400), alert("bgp", 600, N, 1000),
              alert("probing", 0, C, 100), alert("probing", 1200, N, 1000)]
    (ev,) = build_events(KZ, alerts)
    assert ev.min_ratio == pytest.approx(0.1)


def test_event_id_is_stable_and_depends_on_entity_start_and_kind() -> None:
    alerts = [alert("probing", 0, C), alert("probing", 1200, N, 1000)]
    a = build_events(KZ, alerts)[0]
    b = build_events(KZ, list(reversed(alerts)))[0]
    assert a.id == b.id and len(a.id) == 16
    other = build_events(make_ref("country", "UZ"),
                         [alert("probing", 0, C, entity=make_ref("country", "UZ")),
                          alert("probing", 1200, N, 1000, entity=make_ref("country", "UZ"))])
    assert other[0].id != a.id


def test_entity_name_defaults_to_the_code() -> None:
    alerts = [alert("probing", 0, C), alert("probing", 1200, N, 1000)]
    assert build_events(KZ, alerts)[0].entity_name == "KZ"
    assert build_events(KZ, alerts, entity_name="Kazakhstan")[0].entity_name == "Kazakhstan"


def test_alerts_of_another_entity_are_rejected() -> None:
    with pytest.raises(ValueError):
        build_events(make_ref("country", "UZ"), [alert("probing", 0, C)])


def test_codf_has_exactly_the_ioda_keys() -> None:
    alerts = [alert("bgp", 0, C), alert("bgp", 600, N, 1000),
              alert("probing", 0, C), alert("probing", 1200, N, 1000)]
    (ev,) = build_events(KZ, alerts, entity_name="Kazakhstan")
    rec = to_codf(ev, until=T0 + 86400)
    assert tuple(rec) == CODF_KEYS
    assert rec["location"] == "country/KZ"
    assert rec["location_name"] == "Kazakhstan"
    assert (rec["start"], rec["duration"]) == (T0, 1200)
    assert (rec["uncertainty"], rec["status"], rec["fraction"]) == (None, 0, None)
    assert rec["method"] == "ioda.median" and rec["datasource"] == "bgp+probing"
    assert rec["score"] == ev.score and rec["overlaps_window"] is False
    assert to_codf(ev, until=T0 + 600)["overlaps_window"] is True  # still open at until
    per = to_codf_per_signal(ev)
    assert [r["datasource"] for r in per] == ["bgp", "probing"]
    assert all(tuple(r) == CODF_KEYS for r in per)


def test_csv_has_flat_fields_with_signals_joined() -> None:
    alerts = [alert("bgp", 0, C), alert("bgp", 600, N, 1000),
              alert("probing", 0, C), alert("probing", 1200, N, 1000)]
    text = events_to_csv(build_events(KZ, alerts))
    header, row = text.strip().splitlines()
    assert header.startswith("id,entity_type,entity_code,entity_name,start,end")
    assert ",bgp;probing," in row and "2022-01-04T00:00:00Z" in row
