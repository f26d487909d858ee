"""Event-level matching and metrics on hand-made truth/event pairs (netvigil.scoring.matching)."""

from __future__ import annotations

import json

import pytest

from netvigil.model import EntityRef, EntityType, Scope
from netvigil.scoring.matching import YEAR_SECONDS, Detected, RunResult, Truth, score, tally

KZ = EntityRef(EntityType.COUNTRY, "KZ")
ALMATY = EntityRef(EntityType.REGION, "KZ-75")
AS9198 = EntityRef(EntityType.ASN, "9198")
H = 3600


def national(start: int, end: int, required: bool = True) -> Truth:
    return Truth(KZ, Scope.NATIONAL, start, end, required)


def event(ref: EntityRef, start: int, end: int | None, first: int | None = None) -> Detected:
    return Detected(ref, Scope.for_entity(ref), start, end, start if first is None else first)


def run(truth: list[Truth], events: list[Detected], *, entities: int = 10,
        seconds: int = 30 * 86_400) -> RunResult:
    return RunResult(tuple(truth), tuple(events), seconds, entities, seconds)


def test_exact_hit_scores_one_and_measures_errors() -> None:
    r = run([national(10 * H, 20 * H)], [event(KZ, 10 * H + 600, 21 * H, first=10 * H + 1200)])
    row = score("d", "national", [r])
    assert (row.precision, row.recall, row.f1) == (1.0, 1.0, 1.0)
    assert row.time_to_detect_s == 1200.0
    assert row.start_error_s == 600.0
    assert row.end_error_s == 3600.0
    assert row.false_alarms_per_entity_year == 0.0


def test_wrong_scope_or_entity_is_no_match() -> None:
    """A regional event on the dates of a national truth: a miss and a false alarm."""
    r = run([national(10 * H, 20 * H)], [event(ALMATY, 10 * H, 20 * H)])
    t = tally([r])
    assert (t.found, t.hits, t.false_alarms) == (0, 0, 1)
    row = score("d", "national", [r])
    assert row.recall == 0.0 and row.precision == 0.0 and row.f1 == 0.0
    assert row.time_to_detect_s is None and row.start_error_s is None


def test_same_entity_wrong_scope_does_not_match() -> None:
    truth = Truth(KZ, Scope.REGIONAL, 10 * H, 20 * H)
    assert tally([run([truth], [event(KZ, 10 * H, 20 * H)])]).found == 0


def test_no_overlap_is_a_false_alarm_and_a_miss() -> None:
    r = run([national(10 * H, 20 * H)], [event(KZ, 20 * H, 22 * H)])  # [start, end): touching
    t = tally([r])
    assert (t.found, t.false_alarms) == (0, 1)


def test_affected_entities_are_neither_hits_nor_false_alarms() -> None:
    truth = [national(10 * H, 20 * H), Truth(AS9198, Scope.NETWORK, 10 * H, 20 * H, False)]
    r = run(truth, [event(KZ, 10 * H, 20 * H), event(AS9198, 11 * H, 19 * H)])
    t = tally([r])
    assert (t.required, t.found, t.hits, t.false_alarms) == (1, 1, 1, 0)
    assert score("d", "c", [r]).precision == 1.0


def test_open_event_runs_to_the_end_of_the_data() -> None:
    r = run([national(10 * H, 20 * H)], [event(KZ, 10 * H, None)], seconds=30 * H)
    row = score("d", "c", [r])
    assert row.recall == 1.0
    assert row.end_error_s == 10 * H  # open until the data end (30 h), truth ends at 20 h


def test_split_event_counts_each_piece_and_spans_the_truth() -> None:
    """An outage reported as two events (restored in between): both are hits, the start
    error is from the first piece and the end error from the last."""
    r = run([national(10 * H, 20 * H)], [event(KZ, 10 * H, 14 * H), event(KZ, 15 * H, 20 * H)])
    row = score("d", "c", [r])
    assert tally([r]).hits == 2
    assert (row.precision, row.recall, row.start_error_s, row.end_error_s) == (1.0, 1.0, 0, 0)


def test_early_alarm_gives_negative_time_to_detect() -> None:
    r = run([national(10 * H, 20 * H)], [event(KZ, 9 * H, 20 * H)])
    assert score("d", "c", [r]).time_to_detect_s == -H


def test_false_alarm_rate_per_entity_year_and_medians_pool_runs() -> None:
    half_year = int(YEAR_SECONDS / 2)
    quiet = run([], [event(KZ, 0, H), event(AS9198, 5 * H, 6 * H)], entities=10,
                seconds=half_year)
    row = score("d", "quiet", [quiet])
    assert row.false_alarms_per_entity_year == pytest.approx(2 / 5)
    assert row.recall is None and row.precision == 0.0 and row.f1 is None
    a = run([national(0, 10 * H)], [event(KZ, 0, 10 * H, first=600)])
    b = run([national(0, 10 * H)], [event(KZ, 0, 10 * H, first=1800)])
    c = run([national(0, 10 * H)], [event(KZ, 0, 10 * H, first=6000)])
    assert score("d", "c", [a, b, c]).time_to_detect_s == 1800.0


def test_no_events_no_truth_is_null_not_zero() -> None:
    row = score("d", "quiet", [run([], [])])
    assert (row.precision, row.recall, row.f1) == (None, None, None)
    assert row.false_alarms_per_entity_year == 0.0


def test_json_row_has_exactly_the_issue_keys() -> None:
    row = score("ioda.median", "curfew", [run([national(0, H)], [event(KZ, 0, H)])])
    data = json.loads(json.dumps(row.as_json()))
    assert list(data) == ["detector", "class", "precision", "recall", "f1", "time_to_detect_s",
                          "start_error_s", "end_error_s", "false_alarms_per_entity_year"]
    assert data["class"] == "curfew" and data["detector"] == "ioda.median"
