"""Reference detector ``ioda.median``: IODA's moving-median detector, reproduced as the baseline.

Method (CAIDA/watchtower-sentry, ``filters/MovingStat.py`` + ``sinks/AlertKafka.py``):

*MovingStat* (per series, one observation at a time, in time order):

* the prediction is the **nearest-rank median** (``rank = ceil(N/2) - 1`` of the sorted
  window) of the history values with ``t >= now - history`` (the new value excluded);
* **warmup**: nothing is emitted until the oldest stored point is at least ``warmup`` seconds
  old; the window is then initialised from everything collected so far;
* **minprediction**: no ratio is emitted while the prediction is below ``minprediction``
  (or zero); such a point enters the history raw, ends any inpainting (as a non-extreme
  value does in MovingStat) and does not change the alert state;
* **inpainting**: if ``value / predicted`` is below ``inpaint_min`` or above ``inpaint_max``
  the *predicted* value enters the history instead of the observation, so an outage does not
  pull down its own baseline. Raw values are buffered meanwhile. An extreme value seen when
  inpainting started ``>= maxduration`` seconds ago makes the extreme "the new normal": the
  history is rebuilt from the buffered raw values (warmup again if they span less than
  ``warmup``). A non-extreme value ends inpainting and forgets the buffer;
* a history that empties during a long gap restarts the warmup (watchtower would index an
  empty list here; this is the only deliberate divergence from the source). Once warm, the
  window stays warm until it empties (a gap that leaves only young points in the window
  does not re-enter warmup: that used to append to the history without updating the sorted
  window, found by the incremental property test).

*AlertKafka* (per series): ``ratio < critical`` -> critical, ``ratio < warning`` -> warning,
otherwise normal (IODA's sink is configured with ``min`` only, so HIGH ratios are normal).
An alert is emitted only when the level changes. With ``minduration > 0`` a new non-normal
level must still hold on an observed point at least ``minduration`` seconds after it began;
the alert then carries the time, value and history value of the point where it began, and
shorter blips are dropped silently. A change between warning and critical while the
excursion is still unconfirmed keeps the excursion's start time and takes the newest level.
A return to normal is reported immediately.

NetVigil specifics:

* **Missing points (NaN) are gaps**: they neither enter the history nor change the state,
  because missing data is not an outage (watchtower's ``Historical`` source with
  ``ignorenull: true`` does the same).
* **Signals where higher is worse** (``SignalKind.higher_is_better`` False: probe loss,
  latency) are skipped: IODA never ran the median detector on them and a falling-ratio rule
  would be meaningless. :func:`rule_for` returns None for them.
* Parameters and thresholds are data (``ioda_median.toml``) with stable rule ids
  ``ioda.median.<family>``, selected by ``SignalKind.family``.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import tomllib
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import numpy.typing as npt

from netvigil.detect.protocol import DetectorUpdate, PointChunk
from netvigil.model import Alert, Level, Series, signal_kind

METHOD = "ioda.median"
NO_OUTPUT = -1  # level code for points with no ratio (gap, warmup, minprediction)


@dataclass(frozen=True)
class MedianRule:
    """One detector configuration (a ``[rule.<family>]`` table of ``ioda_median.toml``)."""

    id: str
    family: str
    history: int
    warmup: int
    minprediction: float
    inpaint_min: float
    inpaint_max: float
    maxduration: int
    warning: float
    critical: float
    minduration: int
    provenance: str = ""

    def condition(self, level: Level) -> str:
        """AlertKafka's ``condition`` label for a level (``"< 0.5"``, ``"normal"``)."""
        if level is Level.CRITICAL:
            return f"< {self.critical!r}"
        if level is Level.WARNING:
            return f"< {self.warning!r}"
        return "normal"

    def digest(self) -> str:
        """A short hash of the parameters, kept with each detector state: a state built
        under another digest is discarded and its series recomputed."""
        cached: str | None = self.__dict__.get("_digest")
        if cached is None:
            raw = json.dumps(asdict(self), sort_keys=True).encode()
            cached = hashlib.sha256(raw).hexdigest()[:12]
            object.__setattr__(self, "_digest", cached)
        return cached


def parse_rules(text: str) -> dict[str, MedianRule]:
    """Parse the TOML rule table into ``{family: MedianRule}``."""
    doc = tomllib.loads(text)
    defaults = doc.get("defaults", {})
    out: dict[str, MedianRule] = {}
    for family, table in doc.get("rule", {}).items():
        merged = {**defaults, **table}
        out[family] = MedianRule(
            id=str(merged["id"]),
            family=family,
            history=int(merged["history"]),
            warmup=int(merged["warmup"]),
            minprediction=float(merged["minprediction"]),
            inpaint_min=float(merged["inpaint_min"]),
            inpaint_max=float(merged["inpaint_max"]),
            maxduration=int(merged["maxduration"]),
            warning=float(merged["warning"]),
            critical=float(merged["critical"]),
            minduration=int(merged["minduration"]),
            provenance=str(merged.get("provenance", "")),
        )
        rule = out[family]
        if not 0 < rule.critical <= rule.warning:
            raise ValueError(f"{rule.id}: need 0 < critical <= warning")
        if rule.history <= rule.warmup:
            raise ValueError(f"{rule.id}: history must exceed warmup (as MovingStat requires)")
    if "generic" not in out:
        raise ValueError("ioda_median.toml must define [rule.generic]")
    return out


@cache
def load_rules() -> dict[str, MedianRule]:
    """The packaged rules, ``{family: MedianRule}`` (read once)."""
    text = resources.files("netvigil.detect").joinpath("ioda_median.toml").read_text("utf-8")
    return parse_rules(text)


def rule_for(signal: str, rules: dict[str, MedianRule] | None = None) -> MedianRule | None:
    """The rule for a signal name by its family; None if the detector skips it (higher=worse)."""
    kind = signal_kind(signal)
    if not kind.higher_is_better:
        return None
    table = load_rules() if rules is None else rules
    return table.get(kind.family.value, table["generic"])


def rule_by_id(rule_id: str) -> MedianRule | None:
    for rule in load_rules().values():
        if rule.id == rule_id:
            return rule
    return None


@dataclass(frozen=True, eq=False)
class MedianTrace:
    """Per-bin output of MovingStat: prediction, ratio and whether the bin was inpainted.

    ``predicted`` and ``ratio`` are NaN where MovingStat emits nothing (gap, warmup,
    minprediction); ``level`` is the AlertKafka level per bin (``NO_OUTPUT`` = -1 there).
    """

    predicted: npt.NDArray[np.float64]
    ratio: npt.NDArray[np.float64]
    inpainted: npt.NDArray[np.bool_]
    level: npt.NDArray[np.int8]


def moving_median(series: Series, rule: MedianRule) -> MedianTrace:
    """Run MovingStat (median, inpainting, warmup, minprediction) over one series."""
    n = len(series)
    predicted = np.full(n, np.nan)
    ratio_out = np.full(n, np.nan)
    inpainted = np.zeros(n, dtype=np.bool_)
    values = series.values.tolist()
    start, step = series.start, series.step
    history, warmup = rule.history, rule.warmup
    maxduration, minpred = rule.maxduration, rule.minprediction
    lo, hi = rule.inpaint_min, rule.inpaint_max

    vtq: deque[tuple[float, int]] = deque()  # (value maybe inpainted, time), time order
    raw: deque[tuple[float, int]] | None = None  # raw values buffered while inpainting
    window: list[float] | None = None  # sorted values of vtq once warm
    insort, bisect_left = bisect.insort, bisect.bisect_left

    for i, value in enumerate(values):
        if value != value:  # NaN: a gap, not an observation
            continue
        t = start + i * step
        if window is None and (not vtq or vtq[0][1] > t - warmup):
            vtq.append((value, t))  # still warming up
            continue
        window_start = t - history
        if window is None:
            window = sorted(v for v, _ in vtq)
        while vtq and vtq[0][1] < window_start:  # overfull after a time gap
            old = vtq.popleft()[0]
            del window[bisect_left(window, old)]
        if not vtq:  # the whole history aged out during a gap: warm up again
            window, raw = None, None
            vtq.append((value, t))
            continue

        pred = window[(len(window) + 1) // 2 - 1]  # nearest rank: ceil(N/2) - 1
        ratio = value / pred if pred and pred >= minpred else None
        newval = value
        painted = False
        if ratio is not None and (ratio < lo or ratio > hi):
            if raw is None:  # start inpainting
                raw = deque([(value, t)])
                newval, painted = pred, True
            elif raw[0][1] > t - maxduration:  # continue inpainting
                raw.append((value, t))
                newval, painted = pred, True
            else:  # extreme is the new normal: rebuild the history from raw values
                vtq, raw = raw, None
                if vtq[0][1] > t - warmup:
                    window = None
                    vtq.append((value, t))
                    continue
                window = sorted(v for v, _ in vtq)
                pred = window[(len(window) + 1) // 2 - 1]
                ratio = value / pred if pred and pred >= minpred else None
        elif raw is not None:
            raw = None  # not extreme (or no ratio): keep inpainted history, forget raw values

        inpainted[i] = painted
        vtq.append((newval, t))
        if vtq[0][1] > window_start:
            insort(window, newval)
        else:
            old = vtq.popleft()[0]
            del window[bisect_left(window, old)]
            insort(window, newval)
        if ratio is not None:
            predicted[i] = pred
            ratio_out[i] = ratio

    level = np.full(n, NO_OUTPUT, dtype=np.int8)
    ok = ~np.isnan(ratio_out)
    level[ok] = Level.NORMAL
    level[ok & (ratio_out < rule.warning)] = Level.WARNING
    level[ok & (ratio_out < rule.critical)] = Level.CRITICAL
    return MedianTrace(predicted, ratio_out, inpainted, level)


def transitions(series: Series, trace: MedianTrace, rule: MedianRule,
                method: str = METHOD) -> list[Alert]:
    """AlertKafka: alerts on level transitions, with minduration and original start times."""
    alerts: list[Alert] = []
    normal = int(Level.NORMAL)
    reported = normal
    # pending excursion (level code, start index), not yet confirmed by minduration
    pending: tuple[int, int] | None = None
    start, step, minduration = series.start, series.step, rule.minduration
    values, predicted = series.values, trace.predicted
    out_idx = np.flatnonzero(trace.level >= 0)

    def emit(code: int, i: int) -> None:
        level = Level(code)
        alerts.append(Alert(series.entity, series.signal, start + i * step, level,
                            float(values[i]), float(predicted[i]), method,
                            rule.condition(level)))

    for i, code in zip(out_idx.tolist(), trace.level[out_idx].tolist(), strict=True):
        if code == reported:
            pending = None  # blip shorter than minduration: dropped
            continue
        if code == normal:  # back to normal: reported at once
            pending = None
            reported = code
            emit(code, i)
            continue
        if pending is None:
            pending = (code, i)
            if minduration > 0:
                continue
        elif pending[0] != code:
            pending = (code, pending[1])  # warning<->critical: keep the excursion start
        if (i - pending[1]) * step >= minduration:
            reported = code
            emit(code, pending[1])
            pending = None
    return alerts


class IodaMedian:
    """The ``ioda.median`` detector: rules by signal family, alerts per series.

    Implements :class:`netvigil.detect.protocol.Detector`: :meth:`detect` is the readable
    from-scratch reference, :meth:`update` the resumable batch path
    (:mod:`netvigil.detect.median_kernel`), which gives the same alerts.
    """

    method = METHOD

    def __init__(self, rules: dict[str, MedianRule] | None = None) -> None:
        self.rules = load_rules() if rules is None else rules

    def rule_for(self, signal: str) -> MedianRule | None:
        return rule_for(signal, self.rules)

    def configure(self, signal: str) -> MedianRule | None:
        """The rule judging ``signal``; None where higher is worse (not judged)."""
        return self.rule_for(signal)

    def update(self, chunk: PointChunk, states: Sequence[bytes | None]) -> DetectorUpdate:
        """Resume every series of ``chunk`` from its state (None: from scratch).

        Series whose signal is not judged must not be in the chunk (ValueError).
        """
        from netvigil.detect import median_kernel as mk

        n = len(chunk.keys)
        if len(states) != n:
            raise ValueError("update: one state per series of the chunk")
        distinct: list[MedianRule] = []
        slot: dict[str, int] = {}
        which = np.empty(n, np.int64)
        for k, (_, signal) in enumerate(chunk.keys):
            j = slot.get(signal)
            if j is None:
                rule = self.rule_for(signal)
                if rule is None:
                    raise ValueError(f"update: signal {signal!r} is not judged by {METHOD}")
                j = slot[signal] = len(distinct)
                distinct.append(rule)
            which[k] = j
        rules = [distinct[j] for j in which.tolist()]

        def col(name: str, dtype: type) -> npt.NDArray[Any]:
            per_rule: npt.NDArray[Any] = np.array([getattr(r, name) for r in distinct],
                                                  dtype=dtype)
            return np.ascontiguousarray(per_rule[which])

        params = mk.RuleParams(
            col("history", np.int64), col("warmup", np.int64), col("maxduration", np.int64),
            col("minduration", np.int64), col("minprediction", np.float64),
            col("inpaint_min", np.float64), col("inpaint_max", np.float64),
            col("warning", np.float64), col("critical", np.float64))
        res = mk.advance(chunk.offsets, chunk.times, chunk.values, params, states)
        a = res.alerts
        alerts = []
        for k, t, code, v, p in zip(a.index.tolist(), a.time.tolist(), a.level.tolist(),
                                    a.value.tolist(), a.predicted.tolist(), strict=True):
            entity, signal = chunk.keys[k]
            level = Level(code)
            alerts.append(Alert(entity, signal, t, level, v, p, METHOD,
                                rules[k].condition(level)))
        return DetectorUpdate(alerts, res.states, res.reported_before != int(Level.NORMAL))

    def trace(self, series: Series) -> MedianTrace | None:
        rule = self.rule_for(series.signal)
        return None if rule is None else moving_median(series, rule)

    def detect(self, series: Series) -> list[Alert]:
        """Alerts for one series; [] for signals the reference detector skips."""
        rule = self.rule_for(series.signal)
        if rule is None or len(series) == 0:
            return []
        return transitions(series, moving_median(series, rule), rule)


def detect_series(series: Series, rule: MedianRule | None = None) -> list[Alert]:
    """Convenience: ``ioda.median`` alerts for one series (rule chosen by family if None)."""
    chosen = rule if rule is not None else rule_for(series.signal)
    if chosen is None or len(series) == 0:
        return []
    return transitions(series, moving_median(series, chosen), chosen)
