"""Event-level matching and the benchmark's metrics (pure functions, no I/O).

Why event level and not point level: a reader of an observatory counts outages, not bins, and
the issue's goals are stated per event (recall of national events, false alarms per
entity-year). The scheme follows the event-based scoring common in anomaly-detection
benchmarks (an alarm is a hit when it overlaps a labelled window; NAB, Lavin and Ahmad 2015,
scores windows the same way), with the observatory's extra condition that the **entity and the
scope** must be right: a national event does not match a regional truth on the same dates.

Definitions (one class, pooled over that class's scenarios):

* a detected event *matches* a truth row when both name the same entity with the same scope and
  their intervals overlap (``[start, end)``; an open event runs to the end of the data);
* **recall** = required truth rows matched by at least one event / required truth rows;
* a detected event is a **hit** when it matches a required or affected row; it is *ignored*
  when it matches only affected rows (the ASes inside a national cut, the country around a
  regional one: real drops, but not what the scenario is about); otherwise it is a **false
  alarm**. **precision** = hits on required rows / (those hits + false alarms);
* **time to detect** = the first alert of a matching event (the end of its first alerting
  bin: when the data that raised it has arrived) minus the true start, in data time; median
  over the matched required rows;
* **start / end error** = |start of the earliest matching event − true start|, |end of the
  latest matching event (data end if open) − true end|; medians;
* **false alarms per entity-year** = false alarms / (entities judged × years of data).

Medians, not means, so one pathological event does not hide the typical error; ``None``
(JSON ``null``) where a figure has no sample (no match, no event).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from netvigil.model import EntityRef, Scope

YEAR_SECONDS = 365.25 * 86_400


@dataclass(frozen=True)
class Truth:
    """One true event: who, at which scope, when; ``required`` False = affected (don't care)."""

    entity: EntityRef
    scope: Scope
    start: int
    end: int
    required: bool = True


@dataclass(frozen=True)
class Detected:
    """One event as a detector wrote it; ``first_alert`` = data time it could be reported."""

    entity: EntityRef
    scope: Scope
    start: int
    end: int | None
    first_alert: int


@dataclass(frozen=True)
class RunResult:
    """Truth and detected events of one scenario run, with what the rate needs."""

    truth: tuple[Truth, ...]
    events: tuple[Detected, ...]
    data_end: int  # end of the data: the end of an event still open
    entities: int  # entities with series the detector judged
    seconds: int  # length of the data


@dataclass(frozen=True)
class ScoreRow:
    """One row of the benchmark: the JSON keys are these field names, in this order."""

    detector: str
    cls: str
    precision: float | None
    recall: float | None
    f1: float | None
    time_to_detect_s: float | None
    start_error_s: float | None
    end_error_s: float | None
    false_alarms_per_entity_year: float | None

    def as_json(self) -> dict[str, object]:
        return {"detector": self.detector, "class": self.cls, "precision": self.precision,
                "recall": self.recall, "f1": self.f1, "time_to_detect_s": self.time_to_detect_s,
                "start_error_s": self.start_error_s, "end_error_s": self.end_error_s,
                "false_alarms_per_entity_year": self.false_alarms_per_entity_year}


def overlaps(t: Truth, e: Detected, data_end: int) -> bool:
    """Same entity, same scope, intervals ``[start, end)`` intersect (open = data end)."""
    end = data_end if e.end is None else e.end
    return (e.entity == t.entity and e.scope == t.scope
            and e.start < t.end and t.start < max(end, e.start + 1))


@dataclass
class Tally:
    """Counts and error samples accumulated over runs of one class."""

    required: int = 0
    found: int = 0
    hits: int = 0
    false_alarms: int = 0
    entity_seconds: float = 0.0
    ttd: list[float] | None = None
    start_err: list[float] | None = None
    end_err: list[float] | None = None

    def __post_init__(self) -> None:
        self.ttd, self.start_err, self.end_err = [], [], []


def tally(runs: Iterable[RunResult]) -> Tally:
    """Match every run's events to its truth and accumulate the counts (definitions above)."""
    out = Tally()
    assert out.ttd is not None and out.start_err is not None and out.end_err is not None
    for run in runs:
        out.entity_seconds += run.entities * run.seconds
        for t in (t for t in run.truth if t.required):
            out.required += 1
            hit = [e for e in run.events if overlaps(t, e, run.data_end)]
            if not hit:
                continue
            out.found += 1
            first = min(hit, key=lambda e: e.start)
            last = max(hit, key=lambda e: run.data_end if e.end is None else e.end)
            out.ttd.append(float(min(e.first_alert for e in hit) - t.start))
            out.start_err.append(float(abs(first.start - t.start)))
            end = run.data_end if last.end is None else last.end
            out.end_err.append(float(abs(end - t.end)))
        for e in run.events:
            on = [t for t in run.truth if overlaps(t, e, run.data_end)]
            if any(t.required for t in on):
                out.hits += 1
            elif not on:
                out.false_alarms += 1
    return out


def _median(xs: Sequence[float] | None) -> float | None:
    return float(np.median(xs)) if xs else None


def score(detector: str, cls: str, runs: Iterable[RunResult]) -> ScoreRow:
    """The benchmark row of one detector and one class (definitions in the module doc)."""
    t = tally(runs)
    recall = t.found / t.required if t.required else None
    judged = t.hits + t.false_alarms
    precision = t.hits / judged if judged else None
    f1 = (2 * precision * recall / (precision + recall)
          if precision is not None and recall is not None and precision + recall > 0
          else (0.0 if precision is not None and recall is not None else None))
    years = t.entity_seconds / YEAR_SECONDS
    rate = t.false_alarms / years if years > 0 else None
    return ScoreRow(detector, cls, precision, recall, f1, _median(t.ttd), _median(t.start_err),
                    _median(t.end_err), rate)
