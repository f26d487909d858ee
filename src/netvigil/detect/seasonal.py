"""Detector ``netvigil.seasonal``: a seasonal baseline frozen in outage, judged count-aware.

Why not the reference's moving median (issue 8): a 7-day median is flat, so the diurnal
trough of a strongly diurnal network reads as a drop (38 false alarms in 21 days around a
curfew), and its inpainting gives up after ``maxduration`` (a 40-day cut "recovers" 3.4 days
late because the outage became the new normal). IODA also mutes every series whose median is
below 20, which hides city-level and small-AS series entirely.

Method, per series, one observation at a time (O(1) per bin, state O(slots)):

* **Baseline**: multiplicative Holt-Winters without trend, as Brutlag (LISA 2000, "Aberrant
  behavior detection in time series for network monitoring", the RRDtool HWPREDICT) uses
  for network counters: ``prediction = level * profile[slot]`` where ``slot`` is the
  15-minute time-of-day slot (UTC; the profile learns local rhythm whatever the zone).
  The first day (``warmup``) initialises the profile from slot means; afterwards a normal
  bin updates ``level`` (half-life ``level_halflife``, which follows weekly and slow drift)
  and its slot (weight ``season_gamma`` per day), clamped to ``pred +- huber_k * sd``
  (Huber) so one spike, or the first bins of an outage not yet confirmed, move it little.
  The level is a ratio of weighted sums, observations over profile values, so each bin
  weighs as its expected count (the Poisson maximum-likelihood level given the profile),
  not Brutlag's ``x / profile``, which let one ordinary count in a slot whose one-draw
  profile came out tiny inflate the level and the high slots' predictions 2-4x at a
  handful of counts an hour (``seasonal_kernel._update``).
  Measured and chosen against the costs listed in issue 8 (per-slot rolling median 0.016 s
  per country-year, STL 21 s, SARIMAX 25-62 s): the same O(1) per bin as the rolling
  median, but a state of 2 x 96 floats instead of a window of weeks, and, above all,
  freezing is exact: while an excursion is reported **nothing updates**, so a shutdown never enters
  its own baseline and stays open until the data returns, however long (a partial drop
  that never went critical becomes the new normal after ``rebase_after``).
* **Count-aware judgement** (no minimum prediction): a bin is low when
  ``value/prediction < warning``; a run of low bins (an excursion) is reported (alert at
  its first bin, as IODA's AlertKafka does) once it lasted ``minduration`` and the
  lower-tail probability of its bins *together* is below ``p_confirm`` under the noise
  model: Poisson for counts plus an excess relative variance ``phi`` learnt from normal
  bins, i.e. a negative binomial with the same mean and variance (non-count signals:
  Gaussian with relative variance ``phi``). A single bin is never tested alone (at five
  an hour, one empty bin is ordinary; a per-bin test also broke runs of zeros in the
  trough, where an empty bin is ordinary too). So:
  three empty hours where five probes an hour are ordinary confirm (e^-15), one empty hour
  does not; a national series confirms on its second bin.
* **No data** (NaN) is unknown: the state does not move and no level changes. The health
  evidence (which signals were silent in an event's window) is the event's, see
  :mod:`netvigil.events.fusion`.

Levels: critical when the ratio is below ``critical``, warning below ``warning``, per bin.
Return to normal is reported (at its first bin) once a run of bins that are not low lasted
``minduration`` and is plausible at the baseline *together* (lower tail >= ``p_restore``):
without that hysteresis a 30 % drop judged against a 0.8 threshold flickered open and shut
on noise (found by the test of the rebase rule).

**Dating the end** (``restore_climb``). A measured series often climbs back over a few
bins after a restoration at one moment: Trinocular keeps a block down until a probe answers,
one probe a round once its belief is certain, so a block of availability A needs about 1/A
rounds (up to ~10 rounds, 100 min at 600-s rounds, for the sparsest blocks Trinocular tracks,
A >= 0.1; Quan, Heidemann and Pradkin, SIGCOMM 2013). Dating the end at the first *normal*
bin put every national end of the benchmark 1,200-2,400 s late (0.55, 0.77, 0.87 of the
baseline in the three bins after a restoration). Like the start, which is dated at the
first low bin although confirmed later, the end is dated where the change happened: at
the first bin out of the excursion's last *deep* bin (critical, and implausible even at the
critical line: lower tail below ``p_deep``, so a noisy small-count bin of a partial
restoration that dips under the line is not mistaken for the outage), when the recovery is
confirmed within ``restore_climb`` of it. A longer warning stretch after the critical part
(a partial restoration: fixed lines back at 55 % for hours) is not a climb, and the event
ends when the series is back. Parameters are data
(``seasonal.toml``) with stable rule ids ``netvigil.seasonal.<family>``.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cache
from importlib import resources

import numpy as np

from netvigil.detect import seasonal_kernel as sk
from netvigil.detect.protocol import DetectorUpdate, PointChunk
from netvigil.model import Alert, Level, Series, signal_kind

METHOD = "netvigil.seasonal"


@dataclass(frozen=True)
class SeasonalRule:
    """One ``[rule.<family>]`` table of ``seasonal.toml``."""

    id: str
    family: str
    slot_seconds: int
    warmup: int
    level_halflife: int
    season_gamma: float
    phi_halflife: int
    phi_init: float
    phi_min: float
    huber_k: float
    warning: float
    critical: float
    p_confirm: float
    p_restore: float
    minduration: int
    rebase_after: int
    counts: str
    restore_climb: int
    p_deep: float
    provenance: str = ""

    def condition(self, level: Level) -> str:
        if level is Level.CRITICAL:
            return f"< {self.critical!r}"
        if level is Level.WARNING:
            return f"< {self.warning!r}"
        return "normal"

    def digest(self) -> str:
        """The rule's identity in stored detector states; it includes the kernel's state
        version, so a series saved by another kernel is recomputed from scratch by the
        runner instead of resumed from an empty state."""
        raw = json.dumps({**asdict(self), "state_version": sk.STATE_VERSION},
                         sort_keys=True).encode()
        return hashlib.sha256(raw).hexdigest()[:12]

    def params(self) -> list[float]:
        """The kernel's parameter row (order of ``seasonal_kernel.P_*``)."""
        return [self.slot_seconds, self.warmup, self.level_halflife, self.season_gamma,
                self.phi_halflife, self.phi_init, self.phi_min, self.huber_k, self.warning,
                self.critical, self.p_confirm, self.p_restore, self.minduration,
                self.rebase_after, 1.0 if self.counts == "auto" else 0.0,
                self.restore_climb, self.p_deep]


def parse_rules(text: str) -> dict[str, SeasonalRule]:
    """``{family: SeasonalRule}`` from the TOML text; inconsistent values are refused."""
    doc = tomllib.loads(text)
    defaults = doc.get("defaults", {})
    out: dict[str, SeasonalRule] = {}
    for family, table in doc.get("rule", {}).items():
        m = {**defaults, **table}
        rule = SeasonalRule(
            id=str(m["id"]), family=family, slot_seconds=int(m["slot_seconds"]),
            warmup=int(m["warmup"]), level_halflife=int(m["level_halflife"]),
            season_gamma=float(m["season_gamma"]), phi_halflife=int(m["phi_halflife"]),
            phi_init=float(m["phi_init"]), phi_min=float(m["phi_min"]),
            huber_k=float(m["huber_k"]), warning=float(m["warning"]),
            critical=float(m["critical"]),
            p_confirm=float(m["p_confirm"]),
            p_restore=float(m["p_restore"]), minduration=int(m["minduration"]),
            rebase_after=int(m["rebase_after"]), counts=str(m["counts"]),
            restore_climb=int(m["restore_climb"]), p_deep=float(m["p_deep"]),
            provenance=str(m.get("provenance", "")))
        if not 0 < rule.critical <= rule.warning <= 1:
            raise ValueError(f"{rule.id}: need 0 < critical <= warning <= 1")
        if not (0 < rule.p_confirm < 1 and 0 < rule.season_gamma <= 1):
            raise ValueError(f"{rule.id}: need 0 < p_confirm < 1, 0 < season_gamma <= 1")
        if rule.counts not in ("auto", "never") or rule.huber_k <= 0:
            raise ValueError(f"{rule.id}: counts is 'auto' or 'never', huber_k > 0")
        if rule.slot_seconds <= 0 or sk.DAY % rule.slot_seconds:
            raise ValueError(f"{rule.id}: slot_seconds must divide a day")
        out[family] = rule
    if "generic" not in out:
        raise ValueError("seasonal.toml must define [rule.generic]")
    return out


@cache
def load_rules() -> dict[str, SeasonalRule]:
    text = resources.files("netvigil.detect").joinpath("seasonal.toml").read_text("utf-8")
    return parse_rules(text)


class Seasonal:
    """The ``netvigil.seasonal`` detector (see the module docstring)."""

    method = METHOD

    def __init__(self, rules: dict[str, SeasonalRule] | None = None) -> None:
        self.rules = load_rules() if rules is None else rules

    def configure(self, signal: str) -> SeasonalRule | None:
        """The rule judging ``signal``; None where higher is worse (not judged)."""
        kind = signal_kind(signal)
        if not kind.higher_is_better:
            return None
        return self.rules.get(kind.family.value, self.rules["generic"])

    def update(self, chunk: PointChunk, states: Sequence[bytes | None]) -> DetectorUpdate:
        n = len(chunk.keys)
        if len(states) != n:
            raise ValueError("update: one state per series of the chunk")
        by_signal: dict[str, SeasonalRule] = {}
        rules: list[SeasonalRule] = []
        for _, signal in chunk.keys:
            rule = by_signal.get(signal)
            if rule is None:
                found = self.configure(signal)
                if found is None:
                    raise ValueError(f"update: signal {signal!r} is not judged by {METHOD}")
                rule = by_signal[signal] = found
            rules.append(rule)
        rows = {r.id: r.params() for r in by_signal.values()}
        params = np.array([rows[r.id] for r in rules], dtype=np.float64).reshape(n, sk.N_PARAMS)
        res = sk.advance(chunk.offsets, chunk.times, chunk.values, params, states)
        alerts = []
        for k, t, code, v, p in zip(res.index.tolist(), res.time.tolist(),
                                    res.level.tolist(), res.value.tolist(),
                                    res.predicted.tolist(), strict=True):
            entity, signal = chunk.keys[k]
            level = Level(code)
            alerts.append(Alert(entity, signal, t, level, v, p, METHOD,
                                rules[k].condition(level)))
        return DetectorUpdate(alerts, res.states, res.reported_before != int(Level.NORMAL))

    def detect(self, series: Series) -> list[Alert]:
        """Alerts of one whole series from scratch ([] for signals not judged)."""
        if self.configure(series.signal) is None or len(series) == 0:
            return []
        return self.update(PointChunk.from_series([series]), [None]).alerts
