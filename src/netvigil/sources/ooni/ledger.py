"""Accepted measurements -> series, as a function of the *set* of measurements ever accepted.

Why: an hour's measurements arrive in several files and through two doors (``netvigil ooni
import`` of buckets with late uploads, the collector's probe uploads). Series written from
one batch's sums replaced what an earlier batch wrote for the same (country, AS, platform,
hour). Here every distinct measurement keeps one row of verdict facts in the store's ledger
(``netvigil.store.ooni_ledger``, keyed by :func:`~netvigil.sources.ooni.importer.identity`)
and :func:`accept` re-derives what a batch touches from *all* stored rows:

* **cells** (``platform:``, ``platform-blocked:``, ``tls-handshake:``, ``throttling:``): the
  touched hours are judged again from every row of those hours (all countries: an AS's
  value sums its columns across countries) with the importer's own
  :class:`~netvigil.sources.ooni.facts.FactBuilder`. ``platform-blocked:<p>:<m>`` exists for
  every mechanism ``m`` any stored measurement of ``p`` named (0 in its tested hours without
  it); the first measurement naming a new ``m`` re-derives every tested hour of ``p``.
* **ooni-volume**: per entity and hour, the measurements' count, and **0** in an hour
  without any when the entity has a measurement in the 14 days before it
  (:data:`~netvigil.sources.ooni.facts.MAX_ZERO_FILL_HOURS`) and its country has one at or
  after it (the data reaches that far). A collapse of volume is the evidence a shutdown
  leaves (anchors §4.4). The rule only ever turns missing into 0 or a count as measurements
  are added, so writing the hours a batch can change (14 days after each new measurement,
  and the stretch its country's last hour moved) gives the same store in any order.

Re-accepting a stored measurement changes nothing (it is not inserted, nothing is derived).
The cost: one read of the touched hours' rows per batch, and a store row per measurement.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from netvigil.model.entities import EntityType
from netvigil.model.facts import FactSink, PointBatch
from netvigil.sources.ooni.facts import (
    HOUR,
    LEDGER_COLUMNS,
    MAX_ZERO_FILL_HOURS,
    SIGNAL_VOLUME,
    FactBuilder,
    _batch,
)

Columns = Mapping[str, npt.NDArray[Any]]
Entity = tuple[str, str]  # (entity type, code)
ZERO_FILL = MAX_ZERO_FILL_HOURS * HOUR
_COUNTRY, _ASN = EntityType.COUNTRY.value, EntityType.ASN.value


class Ledger(Protocol):
    """What :func:`accept` needs of the store (``netvigil.store.ooni_ledger.OoniLedger``)."""

    def insert(self, rows: Mapping[str, npt.NDArray[Any]], source: str
               ) -> dict[str, npt.NDArray[Any]]: ...

    def rows_in_hours(self, hours: npt.NDArray[np.int64]) -> dict[str, npt.NDArray[Any]]: ...

    def last_hours(self) -> dict[str, int]: ...

    def mechanisms(self) -> dict[str, set[str]]: ...

    def tested_hours(self, platforms: Sequence[str]) -> npt.NDArray[np.int64]: ...

    def hour_counts(self, lo: int, hi: int, ccs: Sequence[str],
                    asns: Sequence[int]) -> list[tuple[str, int, int, int]]: ...


@dataclass(frozen=True)
class Accepted:
    """What one batch added: new measurements, hours derived again, facts emitted."""

    new: int
    known: int  # already in the ledger (imported or uploaded before): nothing derived
    hours: int
    facts: int


def accept(ledger: Ledger, rows: Columns, sink: FactSink, source: str,
           cells: FactBuilder | None = None) -> Accepted:
    """Insert ``rows`` (:data:`LEDGER_COLUMNS`) and emit the facts of everything they
    touch into ``sink`` (module docstring). The caller owns the transaction: the ledger
    rows and the points the sink writes commit together.

    ``cells``: a builder that added exactly ``rows`` (the importer's): when every row is
    new and the touched hours hold no other stored row, the derivation from all rows of
    those hours *is* that builder's cells, so they are emitted without reading the rows
    back (:func:`_only_new_rows`)."""
    last0 = ledger.last_hours()
    mech0 = ledger.mechanisms()
    new = ledger.insert(rows, source)
    n_new = len(new["key"])
    known = len(rows["key"]) - n_new
    if n_new == 0:
        return Accepted(0, known, 0, 0)
    mech1 = ledger.mechanisms()
    fresh = sorted(p for p, ms in mech1.items() if ms - mech0.get(p, set()))
    hours = np.union1d(np.asarray(new["hour"], dtype=np.int64), ledger.tested_hours(fresh))
    last1 = ledger.last_hours()
    builder = cells
    if (builder is None or builder.source != source or known
            or not _only_new_rows(ledger, hours, n_new, last1)):
        builder = FactBuilder(source=source)
        add_rows(builder, ledger.rows_in_hours(hours))
    facts = builder.emit_cells(sink, mech1)
    batch = volume_batch(ledger, new, last0, last1, source)
    if len(batch):
        sink.emit(batch)
        facts += 1
    return Accepted(n_new, known, int(hours.size), facts)


def _only_new_rows(ledger: Ledger, hours: npt.NDArray[np.int64], n_new: int,
                   last: Mapping[str, int]) -> bool:
    """Whether the stored rows of ``hours`` are the ``n_new`` just inserted (counted over
    every stored country: ``last`` has them all)."""
    if not hours.size:
        return True
    touched = set(hours.tolist())
    stored = sum(n for _c, _a, h, n in ledger.hour_counts(
        int(hours[0]), int(hours[-1]), sorted(last), []) if h in touched)
    return stored == n_new


def add_rows(builder: FactBuilder, rows: Columns) -> None:
    """Ledger rows into the builder's cells (:meth:`FactBuilder.add_cell`)."""
    cols = [rows[c].tolist() for c in LEDGER_COLUMNS]
    for (_key, hour, _t, cc, asn, net, _test, plat, outcome, mechs, tls, speed) in zip(
            *cols, strict=True):
        builder.add_cell(int(hour), cc, int(asn), net or "", plat, outcome,
                         mechs.split(",") if mechs else (), _num(tls), _num(speed))


def _num(x: Any) -> float | None:
    return None if x is None or x != x else float(x)  # NaN = none


def _entities(cc: str, asn: int) -> list[Entity]:
    out = [(EntityType.COUNTRY.value, cc)]
    if asn > 0:
        out.append((EntityType.ASN.value, str(asn)))
    return out


def _affected(new: Columns, last0: Mapping[str, int], last1: Mapping[str, int],
              ledger: Ledger) -> dict[Entity, list[tuple[int, int]]]:
    """Per entity, the hour intervals ``[a, b]`` whose volume the new rows can change: 14
    days from each new measurement, and the stretch its country's last hour moved over
    (for the country and every AS measured there in the 14 days before)."""
    measured: dict[Entity, set[int]] = defaultdict(set)  # per entity, its new rows' hours
    for hour, cc, asn in set(zip(new["hour"].tolist(), new["cc"].tolist(),
                                 new["asn"].tolist(), strict=True)):
        measured[(_COUNTRY, str(cc))].add(int(hour))
        if asn > 0:
            measured[(_ASN, str(int(asn)))].add(int(hour))
    out: dict[Entity, list[tuple[int, int]]] = defaultdict(list)
    for ent, hours in measured.items():
        out[ent] = [(h, h + ZERO_FILL) for h in hours]
    for cc, g1 in sorted(last1.items()):
        g0 = last0.get(cc)
        if g0 is None or g1 <= g0:
            continue
        span = (g0 + HOUR, g1)
        out[(EntityType.COUNTRY.value, cc)].append(span)
        for _c, asn, _h, _n in ledger.hour_counts(g0 - ZERO_FILL, g0, [cc], []):
            if asn > 0:
                out[(EntityType.ASN.value, str(asn))].append(span)
    return out


def _hours(intervals: Iterable[tuple[int, int]]) -> npt.NDArray[np.int64]:
    """Every hour of the union of the intervals ``[a, b]``: overlapping ones merged first
    (an entity measured every hour has hundreds of 14-day intervals over the same hours)."""
    merged: list[list[int]] = []
    for a, b in sorted(set(intervals)):
        if merged and a <= merged[-1][1] + HOUR:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    parts = [np.arange(a, b + HOUR, HOUR, dtype=np.int64) for a, b in merged]
    return np.concatenate(parts) if parts else np.empty(0, np.int64)


def volume_batch(ledger: Ledger, new: Columns, last0: Mapping[str, int],
                 last1: Mapping[str, int], source: str) -> PointBatch:
    """``ooni-volume`` of every hour the new rows can change (module docstring)."""
    affected = _affected(new, last0, last1, ledger)
    if not affected:
        return _batch([], source)
    lo = min(a for iv in affected.values() for a, _b in iv)
    hi = max(b for iv in affected.values() for _a, b in iv)
    ccs = sorted({code for et, code in affected if et == EntityType.COUNTRY.value})
    asns = sorted({int(code) for et, code in affected if et == EntityType.ASN.value})
    # per entity, per column (cc, asn): measured hours and counts
    cols: dict[Entity, dict[tuple[str, int], dict[int, int]]] = defaultdict(
        lambda: defaultdict(dict))
    for cc, asn, hour, n in ledger.hour_counts(lo - ZERO_FILL, hi, ccs, asns):
        for ent in _entities(cc, asn):
            if ent in affected:
                cols[ent][(cc, asn)][hour] = n
    rows = []
    for ent, intervals in sorted(affected.items()):
        hours = _hours(intervals)
        total = np.zeros(hours.size)
        keep = np.zeros(hours.size, dtype=bool)
        for (cc, _asn), per in cols.get(ent, {}).items():
            measured = np.fromiter(sorted(per), np.int64)
            counts = np.asarray([per[int(h)] for h in measured], dtype=np.float64)
            at = np.searchsorted(measured, hours)  # first measured hour >= h
            hit = (at < measured.size) & (measured[np.minimum(at, measured.size - 1)] == hours)
            total[hit] += counts[at[hit]]
            prev = measured[np.maximum(at - 1, 0)]
            silent = (at > 0) & (hours - prev <= ZERO_FILL) & (hours <= last1.get(cc, -1))
            keep |= hit | silent
        if keep.any():
            rows.append((ent[0], ent[1], SIGNAL_VOLUME, hours[keep], total[keep]))
    return _batch(rows, source)
