"""Aggregation: source-level facts → per-entity Series (the path real data takes).

Partition key: ``(time window, unit shard)``.

* **Time window**: a slice of bins. BGP and platform bins are independent; probing windows
  chain through the per-block Trinocular beliefs (``final_logit`` → ``prior_logit``).
* **Unit shard**: a subset of the units an entity is summed from — /24 blocks for probing,
  prefix atoms for BGP, AS columns for platform tests. Per-entity values are sums (or, for
  percentages, a summed numerator and denominator), so shards merge by addition
  (:meth:`netvigil.pipeline.entities.EntityMatrix.merge`), and "no unit observed" stays
  missing (NaN) rather than zero.

Modules: :mod:`.probing` (anchors §2.1), :mod:`.bgp` (§1.2), :mod:`.platform` (§4.1),
:mod:`.demo` (the Kazakhstan 2022 reconstruction end to end).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from netvigil.model.facts import BgpVisibility, Fact, PlatformTests, PointBatch, ProbeRound

if TYPE_CHECKING:
    from netvigil.geo.lookup import GeoLookup
    from netvigil.store.duck import Store, WriteResult


_A = TypeVar("_A")


@dataclass
class PipelineStats:
    """What a pipeline wrote since it was made: counts per fact type and store rows."""

    facts: dict[str, int] = field(default_factory=dict)
    points: int = 0  # rows handed to the store
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0


class Pipeline:
    """The one path from facts to series: the only code that writes points to the store.

    Facts are aggregated per entity as they arrive (per-fact-type aggregators keep the state
    that spans facts: probing beliefs across rounds, BGP entities seen before) and buffered
    as point batches; :meth:`flush` writes every buffered batch and the given cursors in one
    store transaction (set-based writes, one per batch).
    """

    def __init__(self, store: Store, geo: GeoLookup | None = None) -> None:
        self.store = store
        self._geo = geo
        self._pending: list[PointBatch] = []
        self._aggregators: dict[type, object] = {}
        self.stats = PipelineStats()

    @property
    def geo(self) -> GeoLookup:
        if self._geo is None:
            from netvigil.geo.lookup import GeoLookup

            self._geo = GeoLookup.default()
        return self._geo

    # -- FactSink ------------------------------------------------------------------------
    def emit(self, fact: Fact) -> None:
        name = type(fact).__name__
        self.stats.facts[name] = self.stats.facts.get(name, 0) + 1
        self._pending.extend(self._points(fact))

    def flush(self, cursors: Mapping[str, str] | None = None) -> None:
        pending, self._pending = self._pending, []
        with self.store.transaction():
            for batch in pending:
                self._account(self.store.write_points(
                    batch.entity_types, batch.entity_codes, batch.signals, batch.times,
                    batch.values, source=batch.source, step=batch.step))
            for key, value in (cursors or {}).items():
                self.store.set_state(key, value)

    def cursor(self, key: str) -> str | None:
        return self.store.get_state(key)

    # -- dispatch ------------------------------------------------------------------------
    def _points(self, fact: Fact) -> list[PointBatch]:
        if isinstance(fact, PointBatch):
            return [fact] if len(fact) else []
        if isinstance(fact, BgpVisibility):
            from netvigil.pipeline.bgp import BgpAggregator

            agg = self._aggregator(BgpAggregator)
            return [b for b in agg.points(fact) if len(b)]
        if isinstance(fact, ProbeRound):
            from netvigil.pipeline.probing import ProbingAggregator

            pagg = self._aggregator(ProbingAggregator)
            return [b for b in pagg.points(fact) if len(b)]
        if isinstance(fact, PlatformTests):
            from netvigil.pipeline.platform import PlatformAggregator

            tagg = self._aggregator(PlatformAggregator)
            return [b for b in tagg.points(fact) if len(b)]
        raise TypeError(f"not a fact: {type(fact).__name__}")

    def _aggregator(self, cls: type[_A]) -> _A:
        agg = self._aggregators.get(cls)
        if agg is None:
            agg = cls(self.geo)
            self._aggregators[cls] = agg
        assert isinstance(agg, cls)
        return agg

    def _account(self, res: WriteResult) -> None:
        self.stats.inserted += res.inserted
        self.stats.updated += res.updated
        self.stats.unchanged += res.unchanged
        self.stats.points += res.inserted + res.updated + res.unchanged


def point_batch(rows: list[tuple[str, str, str, int, float]], *, source: str,
                step: int | None = None) -> PointBatch:
    """Build a :class:`PointBatch` from ``(entity_type, code, signal, time, value)`` rows."""
    if not rows:
        empty = np.empty(0, dtype=object)
        return PointBatch(empty, empty, empty, np.empty(0, np.int64), np.empty(0), source, step)
    et, ec, sig, t, v = zip(*rows, strict=True)
    return PointBatch(np.asarray(et, dtype=object), np.asarray(ec, dtype=object),
                      np.asarray(sig, dtype=object), np.asarray(t, dtype=np.int64),
                      np.asarray(v, dtype=np.float64), source, step)
