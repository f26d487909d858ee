"""Scenarios for the reference detector ``ioda.median`` (watchtower-sentry MovingStat +
AlertKafka, thresholds from the ioda-ui glossary)."""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from netvigil.detect import IodaMedian, detect_series, load_rules, moving_median, rule_for
from netvigil.detect.ioda_median import MedianRule, parse_rules, rule_by_id
from netvigil.model import Alert, Level, Series
from test_detect_support import KZ, T0, series

STEP = 600
DAY = 86400 // STEP
HOUR = 3600 // STEP


def levels(alerts: list[Alert]) -> list[str]:
    return [a.level.label for a in alerts]


def rule(signal: str = "probing") -> MedianRule:
    found = rule_for(signal)
    assert found is not None
    return found


def test_rules_are_data_with_stable_ids_and_published_thresholds() -> None:
    rules = load_rules()
    assert {r.id for r in rules.values()} >= {
        "ioda.median.bgp", "ioda.median.probing", "ioda.median.telescope",
        "ioda.median.platform", "ioda.median.generic"}
    bgp, probing, telescope = rules["bgp"], rules["probing"], rules["telescope"]
    assert (bgp.history, bgp.warning, bgp.critical) == (86400, 0.99, 0.50)
    assert (probing.history, probing.warning, probing.critical) == (604800, 0.80, 0.50)
    assert (telescope.history, telescope.warning, telescope.critical) == (604800, 0.25, 0.10)
    for r in rules.values():
        assert (r.warmup, r.minprediction, r.inpaint_min, r.inpaint_max) == (3600, 20, 0.8, 2)
        assert (r.maxduration, r.minduration) == (604800, 60)
    assert rule_by_id("ioda.median.bgp") == bgp


def test_rule_selected_by_signal_family() -> None:
    assert rule("bgp-v6").id == "ioda.median.bgp"
    assert rule("ping-slash24").id == "ioda.median.probing"
    assert rule("merit-nt").id == "ioda.median.telescope"
    assert rule("platform:whatsapp").id == "ioda.median.platform"
    assert rule("my-import").id == "ioda.median.generic"


def test_signals_where_higher_is_worse_are_skipped() -> None:
    assert rule_for("probing-loss") is None
    assert rule_for("probing-latency") is None
    s = series("probing-loss", np.r_[np.full(DAY, 1.0), np.full(DAY, 90.0)])
    assert detect_series(s) == []
    assert IodaMedian().trace(s) is None


def test_warmup_emits_nothing_for_the_first_hour() -> None:
    s = series("probing", np.full(DAY, 1000.0))
    trace = moving_median(s, rule())
    assert np.isnan(trace.ratio[:HOUR]).all()  # t < start + 3600
    assert trace.ratio[HOUR] == 1.0  # first point with a 3600 s old history
    drop_in_warmup = series("probing", np.r_[np.full(3, 1000.0), np.zeros(3), np.full(DAY, 1000)])
    assert detect_series(drop_in_warmup) == []


def test_minprediction_mutes_signals_below_twenty() -> None:
    small = series("probing", np.r_[np.full(DAY, 19.0), np.zeros(DAY)])
    assert detect_series(small) == []
    assert np.isnan(moving_median(small, rule()).ratio).all()
    enough = series("probing", np.r_[np.full(DAY, 20.0), np.zeros(DAY)])
    assert levels(detect_series(enough)) == ["critical"]


def test_bgp_warns_below_99_percent_but_probing_does_not() -> None:
    values = np.r_[np.full(2 * DAY, 1000.0), np.full(6, 985.0), np.full(DAY, 1000.0)]
    bgp = series("bgp", values, step=STEP)
    alerts = detect_series(bgp)
    assert levels(alerts) == ["warning", "normal"]
    assert alerts[0].condition == "< 0.99"
    assert alerts[0].time == T0 + 2 * DAY * STEP
    assert detect_series(series("probing", values)) == []


def test_thresholds_per_source_critical() -> None:
    drop = np.r_[np.full(2 * DAY, 1000.0), np.full(6, 200.0), np.full(DAY, 1000.0)]
    assert levels(detect_series(series("probing", drop))) == ["critical", "normal"]
    # telescope: 0.2 is above its 0.10 critical but below its 0.25 warning
    alerts = detect_series(series("telescope", drop))
    assert levels(alerts) == ["warning", "normal"]
    assert alerts[0].condition == "< 0.25"


def test_outage_does_not_pull_down_its_own_baseline() -> None:
    values = np.r_[np.full(2 * DAY, 1000.0), np.zeros(4 * DAY), np.full(DAY, 1000.0)]
    s = series("probing", values)
    trace = moving_median(s, rule())
    out = slice(2 * DAY, 6 * DAY)
    assert (trace.predicted[out] == 1000.0).all()  # a raw median would be 0 after a day
    assert trace.inpainted[out].all()
    alerts = detect_series(s)
    assert levels(alerts) == ["critical", "normal"]
    assert alerts[1].time - alerts[0].time == 4 * 86400


def test_without_inpainting_the_outage_would_become_its_baseline() -> None:
    no_inpaint = dataclasses.replace(rule(), inpaint_min=-1.0)
    values = np.r_[np.full(2 * DAY, 1000.0), np.zeros(4 * DAY)]
    trace = moving_median(series("probing", values), no_inpaint)
    assert np.isnan(trace.ratio[-1])  # median 0 < minprediction: the outage went silent


def test_after_maxduration_the_drop_becomes_the_new_normal() -> None:
    values = np.r_[np.full(2 * DAY, 1000.0), np.full(10 * DAY, 300.0)]
    s = series("probing", values)
    alerts = detect_series(s)
    assert levels(alerts) == ["critical", "normal"]
    assert alerts[0].time == T0 + 2 * 86400
    assert alerts[1].time == T0 + (2 + 7) * 86400  # maxduration = 7 days
    assert alerts[1].history_value == 300.0


def test_nan_gap_produces_no_alert() -> None:
    values = np.full(3 * DAY, 1000.0)
    values[DAY: DAY + 6 * HOUR] = np.nan
    assert detect_series(series("probing", values)) == []


def test_nan_gap_inside_an_outage_does_not_end_it() -> None:
    values = np.r_[np.full(2 * DAY, 1000.0), np.zeros(12), np.full(12, np.nan), np.zeros(12),
                   np.full(DAY, 1000.0)]
    alerts = detect_series(series("probing", values))
    assert levels(alerts) == ["critical", "normal"]
    assert alerts[1].time == T0 + (2 * DAY + 36) * STEP


def test_history_emptied_by_a_long_gap_restarts_warmup() -> None:
    values = np.r_[np.full(DAY, 1000.0), np.full(8 * DAY, np.nan), np.full(DAY, 1000.0)]
    trace = moving_median(series("probing", values), rule())
    restart = 9 * DAY
    assert np.isnan(trace.ratio[restart: restart + HOUR]).all()
    assert trace.ratio[restart + HOUR] == 1.0


def test_alerts_only_on_level_transitions() -> None:
    outage = [100.0, 50.0, 0.0, 10.0, 30.0, 0.0]  # all below 0.5: one critical alert
    s = series("probing", np.r_[np.full(2 * DAY, 1000.0), outage, np.full(DAY, 1000.0)])
    assert levels(detect_series(s)) == ["critical", "normal"]
    steps = [700.0] * 3 + [300.0] * 3 + [700.0] * 3  # warning -> critical -> warning
    s = series("probing", np.r_[np.full(2 * DAY, 1000.0), steps, np.full(DAY, 1000.0)])
    alerts = detect_series(s)
    assert levels(alerts) == ["warning", "critical", "warning", "normal"]
    assert [a.time - alerts[0].time for a in alerts] == [0, 1800, 3600, 5400]


def test_minduration_drops_a_short_blip_and_keeps_the_start_time() -> None:
    base = np.full(2 * DAY, 1000.0)
    blip = series("probing", np.r_[base, [0.0], np.full(DAY, 1000.0)])
    assert detect_series(blip) == []
    two = series("probing", np.r_[base, [100.0, 0.0], np.full(DAY, 1000.0)])
    alerts = detect_series(two)
    assert levels(alerts) == ["critical", "normal"]
    assert alerts[0].time == T0 + 2 * DAY * STEP and alerts[0].value == 100.0
    assert alerts[0].history_value == 1000.0
    slow = dataclasses.replace(rule(), minduration=1800)
    three = series("probing", np.r_[base, np.zeros(3), np.full(DAY, 1000.0)])
    assert detect_series(three, slow) == []
    four = series("probing", np.r_[base, np.zeros(4), np.full(DAY, 1000.0)])
    alerts = detect_series(four, slow)
    assert levels(alerts) == ["critical", "normal"]
    assert alerts[0].time == T0 + 2 * DAY * STEP


def test_level_change_before_confirmation_keeps_the_excursion_start() -> None:
    s = series("probing", np.r_[np.full(2 * DAY, 1000.0), [700.0, 100.0, 100.0],
                                np.full(DAY, 1000.0)])
    alerts = detect_series(s)
    assert levels(alerts) == ["critical", "normal"]
    assert alerts[0].time == T0 + 2 * DAY * STEP


def test_minduration_zero_reports_at_once() -> None:
    eager = dataclasses.replace(rule(), minduration=0)
    s = series("probing", np.r_[np.full(2 * DAY, 1000.0), [0.0], np.full(DAY, 1000.0)])
    assert levels(detect_series(s, eager)) == ["critical", "normal"]


def test_nearest_rank_median_of_even_window_is_the_lower_middle() -> None:
    values = np.r_[np.tile([100.0, 200.0], HOUR // 2), [150.0]]
    trace = moving_median(series("probing", values), rule())
    assert trace.predicted[HOUR] == 100.0  # ceil(6/2)-1 = rank 2 of [100,100,100,200,...]


def test_parse_rules_rejects_inconsistent_thresholds() -> None:
    import pytest

    bad = """[defaults]
warmup = 3600
minprediction = 20.0
inpaint_min = 0.8
inpaint_max = 2.0
maxduration = 604800
minduration = 60
[rule.generic]
id = "x"
history = 86400
warning = 0.5
critical = 0.8
"""
    with pytest.raises(ValueError, match="critical"):
        parse_rules(bad)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.booleans(), min_size=50, max_size=400), st.floats(20, 1e6))
def test_a_constant_signal_with_gaps_never_alerts(mask: list[bool], level: float) -> None:
    values = np.where(np.array(mask), np.nan, level)
    assert detect_series(series("probing", values)) == []


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0, 2000) | st.just(float("nan")), min_size=20, max_size=300))
def test_alerts_alternate_and_are_time_ordered(values: list[float]) -> None:
    s = Series(KZ, "bgp", T0, 300, np.array(values))
    alerts = detect_series(s)
    assert all(a.level != b.level for a, b in zip(alerts, alerts[1:], strict=False))
    assert [a.time for a in alerts] == sorted(a.time for a in alerts)
    if alerts:
        assert alerts[0].level is not Level.NORMAL
