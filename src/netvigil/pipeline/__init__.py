"""Aggregation: source-level facts → per-entity Series (the path real data takes).

Partition key: ``(time window, unit shard)``.

* **Time window**: a slice of bins. BGP and platform bins are independent; probing windows
  chain through the per-(vantage, block) Trinocular beliefs, which the probing aggregator
  keeps from round to round (a window starts from the beliefs the previous one ended with).
* **Unit shard**: a subset of the units an entity is summed from — /24 blocks for probing,
  visible /24s for BGP, AS columns for platform tests. Per-entity values are sums (or, for
  percentages, a summed numerator and denominator), so shards merge by adding counts before
  any ratio, and "no unit observed" stays missing (NaN) rather than zero.

Flushes: emitted facts become point batches at once; :meth:`Pipeline.flush` writes them, one
set-based store write per (source, step) group, with the source's cursors in one
transaction. A source re-emitting an unchanged BGP snapshot (a bin without updates) gets the
previous bin's points restamped instead of a new aggregation.

Modules: :mod:`.probing` (anchors §2.1), :mod:`.bgp` (§1.2), :mod:`.platform` (§4.1),
:mod:`.entities` (block → entity helpers, :class:`~.entities.RouteOrigins`).

Checkpoints: the probing aggregator's chained state (per-(vantage, block) beliefs, open
bins; :meth:`~.probing.ProbingAggregator.state`) is written by :meth:`Pipeline.flush` under
the state key :data:`PROBING_STATE_KEY` in the same transaction as the points it produced, and
read back when the aggregator is first needed on a store, so a restarted process continues
the belief chain instead of starting every block from the initial belief.

Cross-source state the pipeline owns: the origin AS of every /24 from the latest BGP
visibility facts (:class:`~.entities.RouteOrigins`), which the probing aggregation uses to
attribute blocks to ASes the way real data is attributed (by the routes, not by a table).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar, cast

import numpy as np

from netvigil.model.facts import BgpVisibility, Fact, PlatformTests, PointBatch, ProbeRound
from netvigil.pipeline.entities import RouteOrigins

if TYPE_CHECKING:
    from netvigil.geo.lookup import GeoLookup
    from netvigil.pipeline.probing import ProbingAggregator, ProbingOptions
    from netvigil.store.duck import Store, WriteResult


_A = TypeVar("_A")

#: State key of the probing aggregator's checkpoint (base64 of a compressed ``.npz``: the
#: ``state`` table holds text; one key keeps the checkpoint in the transaction of the points).
PROBING_STATE_KEY = "pipeline:probing"
#: where :class:`RouteOrigins` is checkpointed (the BGP attribution of blocks to ASes)
ORIGINS_STATE_KEY = "pipeline:origins"
#: digest of the probing checkpoint last written (a pipeline that did not write it re-reads it)
PROBING_TOKEN_KEY = "pipeline:probing:writer"


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

    def __init__(self, store: Store, geo: GeoLookup | None = None, *,
                 probing: ProbingOptions | None = None) -> None:
        self.store = store
        self._geo = geo
        self._pending: list[PointBatch] = []
        self._aggregators: dict[type, object] = {}
        self._probing_options = probing
        self.origins = RouteOrigins()
        self._last_bgp: tuple[BgpVisibility, object, list[PointBatch]] | None = None
        self._saved_revision = 0  # probing aggregator revision last checkpointed
        self._probing_token: str | None = None  # PROBING_TOKEN_KEY last read or written
        self._origins_loaded = False  # RouteOrigins read back from the store yet?
        self._origins_saved = 0  # RouteOrigins.version last checkpointed
        self.stats = PipelineStats()
        #: what was restored from the store's checkpoint, or why it was not (for logs)
        self.restored: str | None = None

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
        pending, self._pending = _concat_batches(self._pending), []
        with self.store.transaction():
            for batch in pending:
                # object arrays of str index like the sequences the store accepts
                self._account(self.store.write_points(
                    cast("Sequence[str]", batch.entity_types),
                    cast("Sequence[str]", batch.entity_codes),
                    cast("Sequence[str]", batch.signals), batch.times,
                    batch.values, source=batch.source, step=batch.step))
            saved = self._checkpoint()
            origins = self._checkpoint_origins()
            for key, value in (cursors or {}).items():
                self.store.set_state(key, value)
        if saved is not None:
            self._saved_revision = saved
        if origins is not None:
            self._origins_saved = origins

    def _checkpoint_origins(self) -> int | None:
        """Write :class:`RouteOrigins` if BGP changed an origin since the last write; the
        version written (recorded only once the transaction commits)."""
        if not self._origins_loaded or self.origins.version == self._origins_saved:
            return None
        self.store.set_state(ORIGINS_STATE_KEY,
                             base64.b64encode(self.origins.state()).decode("ascii"))
        return self.origins.version

    def _note_restored(self, what: str) -> None:
        self.restored = f"{self.restored}; {what}" if self.restored else what

    def _load_origins(self) -> None:
        """Once per pipeline, before the first fact that reads or updates origins."""
        if self._origins_loaded:
            return
        self._origins_loaded = True
        text = self.store.get_state(ORIGINS_STATE_KEY)
        if text is None:
            return
        try:
            self.origins.restore(base64.b64decode(text))
        except (ValueError, OSError, KeyError) as exc:
            self._note_restored(f"origins: not restored: {exc}")
            return
        self._origins_saved = self.origins.version

    def _checkpoint(self) -> int | None:
        """Write the probing aggregator's state if a round changed it since the last write;
        the revision written (recorded only once the transaction commits)."""
        from netvigil.pipeline.probing import ProbingAggregator

        pagg = self._aggregators.get(ProbingAggregator)
        if not isinstance(pagg, ProbingAggregator) or pagg.revision == self._saved_revision:
            return None
        data = pagg.state()
        self.store.set_state(PROBING_STATE_KEY, base64.b64encode(data).decode("ascii"))
        from netvigil.pipeline.roundlog import log_entries

        for key, value in log_entries(pagg.take_folded(), self.store.get_state).items():
            self.store.set_state(key, value)  # the round log (pipeline.roundlog), same commit
        self._probing_token = hashlib.sha256(data).hexdigest()  # deterministic: a digest
        self.store.set_state(PROBING_TOKEN_KEY, self._probing_token)
        return pagg.revision

    def cursor(self, key: str) -> str | None:
        return self.store.get_state(key)

    def write_staged(self, relation: str, *, source: str, step: int | None = None,
                     unique_keys: bool = False) -> None:
        """Imported points already staged in the store's own connection, written now.

        The bulk form of emitting a :class:`PointBatch` for a validated CSV file of millions
        of rows (``netvigil series import``): ``relation`` (columns of
        :meth:`Store.write_staged_points`) goes through the same store upsert as emitted
        batches (``write_points`` and ``write_staged_points`` share one body), without
        every row round-tripping through numpy. Buffered batches are written first, so the
        order of writes is the order of calls.
        """
        self.flush()
        with self.store.transaction():
            self._account(self.store.write_staged_points(
                relation, source=source, step=step, unique_keys=unique_keys))
        self.stats.facts["StagedPoints"] = self.stats.facts.get("StagedPoints", 0) + 1

    # -- dispatch ------------------------------------------------------------------------
    def _points(self, fact: Fact) -> list[PointBatch]:
        if isinstance(fact, PointBatch):
            return [fact] if len(fact) else []
        if isinstance(fact, BgpVisibility):
            from netvigil.pipeline.bgp import BgpAggregator

            self._load_origins()
            agg = self._aggregator(BgpAggregator)
            when = self.geo.bulk_blocks(fact.v4_blocks[:1], fact.time)
            key = (when.snapshot_date, when.country_source)
            last = self._last_bgp
            if last is not None and last[1] == key and _same_visibility(last[0], fact):
                # Unchanged routing state (a bin without updates): the same counts, restamped.
                out = [_restamp(b, fact.time - last[0].time) for b in last[2]]
            else:
                self.origins.update(fact.v4_blocks, fact.v4_origin)
                out = [b for b in agg.points(fact) if len(b)]
            self._last_bgp = (fact, key, out)
            return out
        if isinstance(fact, ProbeRound):
            from netvigil.pipeline.probing import ProbingAggregator

            self._load_origins()
            pagg = self._aggregators.get(ProbingAggregator)
            if not isinstance(pagg, ProbingAggregator) or self._probing_moved(pagg):
                pagg = self._restore_probing(
                    ProbingAggregator(self.geo, self._probing_options, self.origins))
                self._aggregators[ProbingAggregator] = pagg
            assert isinstance(pagg, ProbingAggregator)
            return [b for b in pagg.points(fact) if len(b)]
        if isinstance(fact, PlatformTests):
            from netvigil.pipeline.platform import PlatformAggregator

            tagg = self._aggregator(PlatformAggregator)
            return [b for b in tagg.points(fact) if len(b)]
        raise TypeError(f"not a fact: {type(fact).__name__}")

    def _probing_moved(self, pagg: ProbingAggregator) -> bool:
        """Another writer of this store (the collector, another prober) checkpointed since
        this long-lived pipeline last read or wrote the checkpoint, and nothing is pending
        here: continue from theirs, or their vantage points' beliefs and bins would be
        overwritten (docs/probe.md, "Local and remote vantage points")."""
        return (pagg.revision == self._saved_revision
                and self.store.get_state(PROBING_TOKEN_KEY) != self._probing_token)

    def _restore_probing(self, pagg: ProbingAggregator) -> ProbingAggregator:
        """Continue from the store's checkpoint, if any. One of another belief model or
        format is not continued (the chain starts over, as without a checkpoint) and
        :attr:`restored` says why."""
        from netvigil.pipeline.probing import StateMismatch

        self._probing_token = self.store.get_state(PROBING_TOKEN_KEY)
        self._saved_revision = 0
        if self._probing_options is not None and self._probing_options.start_over:
            return self._restore_base(pagg)
        text = self.store.get_state(PROBING_STATE_KEY)
        if text is None:
            return pagg
        try:
            pagg.restore(base64.b64decode(text))
        except StateMismatch as exc:
            self._note_restored(f"probing: not restored: {exc}")
            return pagg
        self._note_restored(f"probing: {pagg.summary()}")
        self._saved_revision = pagg.revision
        return pagg

    def _restore_base(self, pagg: ProbingAggregator) -> ProbingAggregator:
        """A replay of the round log (``start_over``) starts where the log starts: the
        initial belief, or the base its pruning left (``pipeline.roundlog``). A base of
        another belief model cannot be replayed from: that is an error, not a restart from
        the initial belief, which would silently drop every pruned round."""
        from netvigil.pipeline.roundlog import read_base

        base = read_base(self.store.get_state)
        if base is not None:
            pagg.restore(base.state, from_base=True)
            self._note_restored(f"probing: round log base before {base.before}")
        return pagg

    def _aggregator(self, cls: type[_A]) -> _A:
        agg = self._aggregators.get(cls)
        if agg is None:
            agg = cast("Callable[[GeoLookup], _A]", cls)(self.geo)
            self._aggregators[cls] = agg
        assert isinstance(agg, cls)
        return agg

    def _account(self, res: WriteResult) -> None:
        self.stats.inserted += res.inserted
        self.stats.updated += res.updated
        self.stats.unchanged += res.unchanged
        self.stats.points += res.inserted + res.updated + res.unchanged


def _same_visibility(a: BgpVisibility, b: BgpVisibility) -> bool:
    """The same measured state: the very same arrays (a source re-emitting an unchanged
    snapshot for a bin without updates), the same full-feed peers and step."""
    return (a.step == b.step and a.full_feed_v4 == b.full_feed_v4
            and a.full_feed_v6 == b.full_feed_v6 and a.v4_blocks is b.v4_blocks
            and a.v4_origin is b.v4_origin and a.v6_starts is b.v6_starts
            and a.v6_ends is b.v6_ends and a.v6_by_origin == b.v6_by_origin)


def _restamp(b: PointBatch, shift: int) -> PointBatch:
    return PointBatch(b.entity_types, b.entity_codes, b.signals, b.times + shift, b.values,
                      b.source, b.step)


def _concat_batches(batches: list[PointBatch]) -> list[PointBatch]:
    """Merge consecutive batches of one (source, step) into one store write each.

    A demo emits thousands of rounds between two flushes; one set-based write per group
    replaces one write per fact. A batch that may repeat a key already in the open group
    (same signal, overlapping times: e.g. a late vantage point re-emitting a bin) closes the
    group first, so later values still overwrite earlier ones in order.
    """
    out: list[PointBatch] = []
    open_: dict[tuple[str, int | None], tuple[list[PointBatch], dict[str, tuple[int, int]]]]
    open_ = {}

    def close(key: tuple[str, int | None]) -> None:
        group, _spans = open_.pop(key)
        if len(group) == 1:
            out.append(group[0])
            return
        out.append(PointBatch(
            np.concatenate([b.entity_types for b in group]),
            np.concatenate([b.entity_codes for b in group]),
            np.concatenate([b.signals for b in group]),
            np.concatenate([b.times for b in group]),
            np.concatenate([b.values for b in group]), key[0], key[1]))

    for b in batches:
        if not len(b):
            continue
        key = (b.source, b.step)
        t0, t1 = int(b.times.min()), int(b.times.max())
        sigs = set(b.signals.tolist())
        if key in open_:
            seen = open_[key][1]
            if any(s in seen and seen[s][0] <= t1 and t0 <= seen[s][1] for s in sigs):
                close(key)
        group, spans = open_.setdefault(key, ([], {}))
        group.append(b)
        for s in sigs:
            lo, hi = spans.get(s, (t0, t1))
            spans[s] = (min(lo, t0), max(hi, t1))
    for key in list(open_):
        close(key)
    return out


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
