"""Judged OONI measurements -> tier-0 facts, per (hour, country, AS, platform).

Series they become (signal names are stable; docs/ooni.md lists them for classification):

* ``platform:<name>`` — through :class:`~netvigil.model.facts.PlatformTests` and the one
  :class:`netvigil.pipeline.platform.PlatformAggregator`: % of counted tests that reached
  the service, from the ok / anomaly / confirmed / failure counts (failures excluded).
* ``ooni-volume`` — measurements of *every* test name per country and per AS and hour.
  Silent hours of up to two weeks (between an entity's measurements, or after its last one
  up to the import's last hour) are written as **0**, not left missing: a collapse of
  volume is the evidence a shutdown leaves in OONI data (anchors §4.4, "volume collapse is
  silent" is the gap this closes).
* ``platform-blocked:<name>:<mechanism>`` — blocked (anomaly + confirmed) measurements per
  hour naming that mechanism (``dns``, ``tcp``, ``tls``, ``http-blockpage``, ``http``,
  ``other``); 0 in hours the platform was tested without that mechanism, so a block that
  stops reads as a fall to 0, not as silence.
* ``tls-handshake:<name>`` — median of the measurements' median successful TLS handshake
  time (ms) per hour: the throttling signal (the same-server baseline is the series' own
  history).
* ``throttling:<name>`` — median target/control speed per hour of NetVigil's
  ``sni_throttling`` measurements, in % (:func:`~netvigil.sources.ooni.verdict.speed_ratio`
  × 100: the same server address fetched with the platform's SNI and with a control SNI,
  OONI's same-server baseline; 100 = same speed, 10 = ten times slower). A percentage like
  ``platform:<name>`` because the level-drop detectors mute predictions below 20
  (``minprediction``, IODA's setting); higher is better, so they judge it; its family is
  ``throttling`` (classified ``throttling``, never ``platform-block``).

Why one :class:`PlatformTests` per platform and run of consecutive hours tested by the same
(country, AS) columns: the aggregator writes NaN for a column without any test, so one dense
fact over a long span would overwrite values another import wrote for untested cells. The
costs: sparse, irregular data gives up to one small fact per platform-hour; values are
per import — a later import of the
same (hour, platform, network) replaces the earlier value instead of adding to it, so import
an hour's files together (a bucket folder does).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from netvigil.model.entities import EntityType
from netvigil.model.facts import FactSink, PlatformTests, PointBatch
from netvigil.model.signals import THROTTLING_PREFIX
from netvigil.sources.ooni.meta import UNKNOWN_CC, Meta
from netvigil.sources.ooni.verdict import Outcome, Verdict

HOUR = 3600
SIGNAL_VOLUME = "ooni-volume"
BLOCKED_PREFIX = "platform-blocked:"
TLS_PREFIX = "tls-handshake:"
SOURCE = "ooni"
#: longest silence written as zeros in ``ooni-volume`` (two weeks: the longest national
#: shutdowns in the IODA curated list are days to weeks; beyond it, missing)
MAX_ZERO_FILL_HOURS = 14 * 24
_OUTCOME_COL = {Outcome.OK: 0, Outcome.ANOMALY: 1, Outcome.CONFIRMED: 2, Outcome.FAILURE: 3}

Column = tuple[str, int]  # (country, asn)
#: one accepted measurement's verdict facts (the store's ``ooni_measurements`` columns)
LEDGER_COLUMNS = ("key", "hour", "time", "cc", "asn", "network", "test_name", "platform",
                  "outcome", "mechanisms", "tls_ms", "speed")
Row = tuple[str, str, str, np.ndarray, np.ndarray]  # entity type, code, signal, times, values


@dataclass
class FactBuilder:
    """Accumulates verdicts of one import; :meth:`emit` hands the facts to a sink."""

    source: str = SOURCE
    counts: dict[tuple[int, str], dict[Column, list[int]]] = field(
        default_factory=lambda: defaultdict(dict))
    volume: dict[Column, dict[int, int]] = field(default_factory=lambda: defaultdict(dict))
    blocked: dict[tuple[str, str], dict[tuple[int, Column], int]] = field(
        default_factory=lambda: defaultdict(dict))
    tls: dict[str, dict[tuple[int, Column], list[float]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list)))
    speed: dict[str, dict[tuple[int, Column], list[float]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list)))
    unattributed: int = 0
    #: AS -> (probe_network_name, country it was measured in), for the entities table
    networks: dict[int, tuple[str, str]] = field(default_factory=dict)

    #: the accepted measurements' verdict facts, one tuple per measurement in
    #: :data:`LEDGER_COLUMNS` order (what the store's ledger keeps: docs/ooni.md)
    rows: list[tuple[Any, ...]] = field(default_factory=list)

    def add(self, meta: Meta, v: Verdict, key: tuple[str, ...] | None = None) -> None:
        """One measurement. Country ``ZZ`` counts as unattributed (no entity to place it).
        ``key`` is its identity (:func:`netvigil.sources.ooni.importer.identity`); without
        one it is keyed by its base keys and verdict (:func:`fallback_key`)."""
        self.add_row(ledger_row(meta, v, key))

    def add_row(self, row: tuple[Any, ...] | None) -> None:
        """One measurement as its :func:`ledger_row` (None: unattributed): kept for the
        ledger and added to the cells."""
        if row is None:
            self.unattributed += 1
            return
        self.rows.append(row)
        _key, hour, _t, cc, asn, network, _test, platform, outcome, mechs, tls, speed = row
        self.add_cell(hour, cc, asn, network, platform, outcome,
                      mechs.split(",") if mechs else (), tls, speed)

    def add_cell(self, hour: int, cc: str, asn: int, network: str, platform: str | None,
                 outcome: str | None, mechanisms: Iterable[str], tls_ms: float | None,
                 speed: float | None) -> None:
        """One measurement's verdict facts into the (hour, country, AS) cells: the one
        aggregation both the in-memory path and the ledger derivation use."""
        col = (cc, asn)
        if asn > 0 and (network or asn not in self.networks):
            self.networks[asn] = (network, cc)
        vol = self.volume[col]
        vol[hour] = vol.get(hour, 0) + 1
        if platform is None or outcome is None:
            return
        cell = self.counts[(hour, platform)].setdefault(col, [0, 0, 0, 0])
        cell[_OUTCOME_COL[Outcome(outcome)]] += 1
        for mech in mechanisms:
            per = self.blocked[(platform, mech)]
            per[(hour, col)] = per.get((hour, col), 0) + 1
        if tls_ms is not None:
            self.tls[platform][(hour, col)].append(tls_ms)
        if speed is not None:
            self.speed[platform][(hour, col)].append(speed)

    def ledger_rows(self) -> dict[str, np.ndarray]:
        """:attr:`rows` as columns (the ledger's insert shape), NaN for a missing float."""
        cols = list(zip(*self.rows, strict=True)) if self.rows else [()] * len(LEDGER_COLUMNS)
        out: dict[str, np.ndarray] = {}
        for name, values in zip(LEDGER_COLUMNS, cols, strict=True):
            if name in ("hour", "time", "asn"):
                out[name] = np.asarray(values, dtype=np.int64)
            elif name in ("tls_ms", "speed"):
                out[name] = np.asarray([np.nan if x is None else x for x in values],
                                       dtype=np.float64)
            else:
                out[name] = np.asarray(values, dtype=object)
        return out

    def emit_cells(self, sink: FactSink, mechanisms: Mapping[str, Iterable[str]]) -> int:
        """The per-cell facts (``platform:``, ``platform-blocked:``, ``tls-handshake:``,
        ``throttling:``), not ``ooni-volume``; ``platform-blocked:<p>:<m>`` for every
        mechanism ``m`` in ``mechanisms[p]`` (0 in tested hours without it), so the zeros
        do not depend on which mechanisms this builder happened to see."""
        n = 0
        for plat, hours, keys in self._runs():
            sink.emit(_platform_fact(plat, hours, keys, self.counts))
            n += 1
        for batch in (self._blocked_batch(mechanisms), self._tls_batch(),
                      self._speed_batch()):
            if len(batch):
                sink.emit(batch)
                n += 1
        return n

    def _runs(self) -> list[tuple[str, list[int], list[Column]]]:
        """Per platform, runs of consecutive hours tested by exactly the same (country, AS)
        columns: one dense fact per run has no untested cell (module docstring), and a
        regular measurement schedule gives one fact per platform instead of one per hour."""
        by_plat: dict[str, list[int]] = defaultdict(list)
        for hour, plat in self.counts:
            by_plat[plat].append(hour)
        runs: list[tuple[str, list[int], list[Column]]] = []
        for plat, hours in sorted(by_plat.items()):
            for hour in sorted(hours):
                keys = sorted(self.counts[(hour, plat)])
                last = runs[-1] if runs else None
                if (last is not None and last[0] == plat and last[1][-1] + HOUR == hour
                        and last[2] == keys):
                    last[1].append(hour)
                else:
                    runs.append((plat, [hour], keys))
        return runs

    # -- point batches ---------------------------------------------------------------------
    def _blocked_batch(self, mechanisms: Mapping[str, Iterable[str]] | None = None
                       ) -> PointBatch:
        pairs = set(self.blocked)
        if mechanisms is not None:
            tested_plats = {p for _h, p in self.counts}
            pairs |= {(p, m) for p, ms in mechanisms.items() if p in tested_plats for m in ms}
        rows = []
        for plat, mech in sorted(pairs):
            per = self.blocked.get((plat, mech), {})
            # every (hour, column) where the platform was tested: 0 unless blocked this way
            tested = {(h, c) for (h, p), cols in self.counts.items() if p == plat for c in cols}
            cells = {k: per.get(k, 0) for k in tested}
            rows += _entity_rows(cells, f"{BLOCKED_PREFIX}{plat}:{mech}", sum)
        return _batch(rows, self.source)

    def _tls_batch(self) -> PointBatch:
        rows = []
        for plat, per in sorted(self.tls.items()):
            rows += _entity_rows(dict(per), f"{TLS_PREFIX}{plat}", _median_of_lists)
        return _batch(rows, self.source)

    def _speed_batch(self) -> PointBatch:
        """``throttling:<platform>``: median target/control speed (%) per entity-hour."""
        rows = []
        for plat, per in sorted(self.speed.items()):
            rows += _entity_rows(dict(per), f"{THROTTLING_PREFIX}{plat}", _median_of_lists)
        return _batch(rows, self.source)


def ledger_row(meta: Meta, v: Verdict, key: tuple[str, ...] | None = None
               ) -> tuple[Any, ...] | None:
    """One measurement's verdict facts in :data:`LEDGER_COLUMNS` order, or None for
    country ``ZZ`` (no entity to place it). Plain values: a worker process hands rows back
    cheaply (:func:`netvigil.sources.ooni.importer.judge_file`)."""
    if meta.cc == UNKNOWN_CC:
        return None
    hour = meta.time - meta.time % HOUR
    speed = None if v.speed_ratio is None else 100.0 * v.speed_ratio
    outcome = v.outcome.value if v.outcome is not None else None
    return (key_text(key) if key is not None else fallback_key(meta, v),
            hour, meta.time, meta.cc, meta.asn, meta.network_name,
            meta.test_name, v.platform, outcome, ",".join(v.mechanisms),
            v.tls_handshake_ms, speed)


def key_text(key: tuple[str, ...]) -> str:
    """An identity tuple as the ledger's key text."""
    return "\x1f".join(key)


def fallback_key(meta: Meta, v: Verdict) -> str:
    """A key for a caller that has no identity: base keys and verdict (two measurements
    equal in all of them count once)."""
    return key_text(("facts", meta.test_name, str(meta.time), meta.cc, str(meta.asn),
                      str(v.platform), str(v.outcome), ",".join(v.mechanisms),
                      repr(v.tls_handshake_ms), repr(v.speed_ratio)))


def _median_of_lists(parts: list[list[float]]) -> float:
    return float(statistics.median(x for p in parts for x in p))


def _entity_rows(cells: Mapping[tuple[int, Column], Any], signal: str,
                 combine: Callable[[list[Any]], float]) -> list[Row]:
    """(hour, (cc, asn)) cells -> per-country and per-AS hourly rows, combined by ``combine``
    (sum of counts, median of handshake times)."""
    groups: dict[tuple[str, str], dict[int, list[Any]]] = defaultdict(
        lambda: defaultdict(list))
    for (hour, (cc, asn)), value in cells.items():
        groups[(EntityType.COUNTRY.value, cc)][hour].append(value)
        if asn > 0:
            groups[(EntityType.ASN.value, str(asn))][hour].append(value)
    rows = []
    for (et, code), per in groups.items():
        hours = np.fromiter(sorted(per), np.int64)
        vals = np.array([combine(per[int(h)]) for h in hours], dtype=np.float64)
        rows.append((et, code, signal, hours, vals))
    return rows


def _batch(rows: list[Row], source: str) -> PointBatch:
    if not rows:
        e = np.empty(0, dtype=object)
        return PointBatch(e, e, e, np.empty(0, np.int64), np.empty(0), source, HOUR)
    return PointBatch(
        np.concatenate([np.full(t.size, et, dtype=object) for et, _c, _s, t, _v in rows]),
        np.concatenate([np.full(t.size, c, dtype=object) for _e, c, _s, t, _v in rows]),
        np.concatenate([np.full(t.size, s, dtype=object) for _e, _c, s, t, _v in rows]),
        np.concatenate([t for *_x, t, _v in rows]).astype(np.int64),
        np.concatenate([v for *_x, v in rows]).astype(np.float64), source, HOUR)


def _platform_fact(platform: str, hours: list[int], keys: list[Column],
                   counts: dict[tuple[int, str], dict[Column, list[int]]]) -> PlatformTests:
    """One dense fact over consecutive ``hours``, every column tested in every hour."""
    raw = np.asarray([[counts[(h, platform)][k] for k in keys] for h in hours],
                     dtype=np.int64)  # [bins, columns, 4 outcomes]
    arr = np.minimum(raw, 65535).astype(np.uint16)[..., np.newaxis]  # PlatformTests: uint16
    return PlatformTests(hours[0], HOUR, (platform,), tuple(k[0] for k in keys),
                         np.asarray([k[1] for k in keys], dtype=np.int64),
                         arr[:, :, 0], arr[:, :, 1], arr[:, :, 2], arr[:, :, 3])
