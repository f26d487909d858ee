"""Block → entity assignment and the per-entity count matrix every aggregation returns.

Why a matrix and not Series objects straight away: aggregation runs per partition (a time
window × a shard of blocks, see :mod:`netvigil.pipeline`), and partial results must merge
cheaply. An :class:`EntityMatrix` holds, per bin and entity, the summed value and the number of
units that were *observed*; shards of blocks merge by adding both, windows by concatenating.
Only at the end does "observed nothing" become NaN (missing), never zero (model/series.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from netvigil.model import EntityRef, EntityType, Series

I16 = npt.NDArray[np.int16]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
U32 = npt.NDArray[np.uint32]


@dataclass(frozen=True, eq=False)
class BlockLocations:
    """Country and AS of each /24 (aligned with a ``block_starts`` array).

    Same layout as ``netvigil.geo.lookup.BulkLocation``: ``country_idx`` indexes ``countries``
    (−1 unknown), ``asn`` is 0 where unknown.
    """

    country_idx: I16
    countries: tuple[str, ...]
    asn: I64
    source: str = ""

    def subset(self, index: npt.NDArray[np.intp]) -> BlockLocations:
        return BlockLocations(self.country_idx[index], self.countries, self.asn[index],
                              self.source)


Locator = Callable[[U32, int], BlockLocations]


def geo_locator(block_starts: U32, when: int) -> BlockLocations:
    """Locate /24s with :class:`netvigil.geo.lookup.GeoLookup` as of ``when`` (unix seconds)."""
    from netvigil.geo.lookup import GeoLookup

    loc = GeoLookup.default().bulk_blocks(block_starts, when)
    return BlockLocations(np.asarray(loc.country_idx, dtype=np.int16), tuple(loc.countries),
                          np.asarray(loc.asn, dtype=np.int64), loc.country_source or "geo")


@dataclass(frozen=True, eq=False)
class Grouping:
    """Units (blocks, AS columns…) → entity index (−1 = in no entity), with the entity refs."""

    refs: tuple[EntityRef, ...]
    index: I64

    @classmethod
    def from_locations(cls, locs: BlockLocations, *, countries: bool = True,
                       asns: bool = True) -> list[Grouping]:
        """One grouping for countries and one for ASes (a block counts in one of each)."""
        out: list[Grouping] = []
        if countries:
            used = np.unique(locs.country_idx[locs.country_idx >= 0])
            refs = tuple(EntityRef(EntityType.COUNTRY, locs.countries[int(i)]) for i in used)
            lut = np.full(len(locs.countries) + 1, -1, dtype=np.int64)
            lut[used] = np.arange(used.size)
            out.append(cls(refs, lut[locs.country_idx.astype(np.int64)]))
        if asns:
            used_asn = np.unique(locs.asn[locs.asn > 0])
            refs = tuple(EntityRef(EntityType.ASN, str(int(a))) for a in used_asn)
            idx = np.searchsorted(used_asn, locs.asn)
            ok = (locs.asn > 0) & (idx < used_asn.size)
            out.append(cls(refs, np.where(ok, idx, -1).astype(np.int64)))
        return out


@dataclass(frozen=True, eq=False)
class EntityMatrix:
    """Per-bin, per-entity sums and observation counts of one signal.

    ``value[i, e]`` is the aggregated value (e.g. up /24s) and ``observed[i, e]`` how many units
    contributed an observation; where ``observed == 0`` the point is missing.
    ``ratio=True`` marks a percentage signal stored as ``numerator`` sums with ``observed``
    as the denominator (platform tests): the value is 100·value/observed.
    """

    signal: str
    start: int
    step: int
    refs: tuple[EntityRef, ...]
    value: F64  # [bins, entities]
    observed: F64  # [bins, entities]
    ratio: bool = False

    def merge(self, other: EntityMatrix) -> EntityMatrix:
        """Add another shard's partial sums (same window, signal and entity list)."""
        if (other.signal, other.start, other.step, other.refs) != (
                self.signal, self.start, self.step, self.refs):
            raise ValueError("can only merge shards of the same window, signal and entities")
        return EntityMatrix(self.signal, self.start, self.step, self.refs,
                            self.value + other.value, self.observed + other.observed, self.ratio)

    def values(self) -> F64:
        with np.errstate(invalid="ignore", divide="ignore"):
            out = 100.0 * self.value / self.observed if self.ratio else self.value.copy()
        return np.asarray(np.where(self.observed > 0, out, np.nan), dtype=np.float64)

    def to_series(self, keep: Callable[[EntityRef, F64], bool] | None = None) -> list[Series]:
        vals = self.values()
        out: list[Series] = []
        for j, ref in enumerate(self.refs):
            col = np.ascontiguousarray(vals[:, j])
            if keep is None or keep(ref, col):
                out.append(Series(ref, self.signal, self.start, self.step, col))
        return out


def concat_windows(parts: Sequence[EntityMatrix]) -> EntityMatrix:
    """Join consecutive time windows of one signal (same entity list) into one matrix."""
    first = parts[0]
    t = first.start
    for p in parts:
        if p.start != t or p.refs != first.refs or p.step != first.step:
            raise ValueError("windows must be consecutive and share entities and step")
        t = p.start + p.step * p.value.shape[0]
    return EntityMatrix(first.signal, first.start, first.step, first.refs,
                        np.concatenate([p.value for p in parts]),
                        np.concatenate([p.observed for p in parts]), first.ratio)


def group_sum(units: npt.NDArray[np.generic], grouping: Grouping) -> F64:
    """Sum a [bins, units] array into [bins, entities] by the grouping (−1 units dropped)."""
    n_ent = len(grouping.refs)
    rows = units.shape[0]
    if n_ent == 0:
        return np.zeros((rows, 0))
    member = np.flatnonzero(grouping.index >= 0)
    order = member[np.argsort(grouping.index[member], kind="stable")]
    gidx = grouping.index[order]
    out = np.zeros((rows, n_ent))
    if order.size == 0:
        return out
    starts = np.flatnonzero(np.r_[True, gidx[1:] != gidx[:-1]])
    sums = np.add.reduceat(np.asarray(units[:, order], dtype=np.float64), starts, axis=1)
    out[:, gidx[starts]] = sums
    return out


class RouteOrigins:
    """Origin AS of every /24 as BGP last showed it: how real data attributes blocks to ASes.

    Fed by the pipeline from each :class:`netvigil.model.facts.BgpVisibility` fact (the
    origin of the most-specific full-feed route covering each visible /24). A /24 that
    stops being visible keeps its last origin (a blackout that withdraws routes must not
    move blocks out of their AS). Dense over the /24 space (2^24 × 4 bytes = 64 MiB),
    allocated on the first fact: updates and lookups are one scatter / gather.
    """

    def __init__(self) -> None:
        self._dense: npt.NDArray[np.uint32] | None = None
        #: bumped whenever an origin actually changes, so users can cache attributions
        self.version = 0

    @property
    def known(self) -> bool:
        return self._dense is not None

    def update(self, blocks: U32, origins: npt.NDArray[np.uint32]) -> None:
        if blocks.size == 0:
            return
        if self._dense is None:
            self._dense = np.zeros(1 << 24, dtype=np.uint32)
        o = np.asarray(origins, dtype=np.uint32)
        ok = o > 0
        slots = np.asarray(blocks, dtype=np.uint32)[ok] >> np.uint32(8)
        if not np.array_equal(self._dense[slots], o[ok]):
            self._dense[slots] = o[ok]
            self.version += 1

    def lookup(self, blocks: U32) -> I64:
        """Origin AS of each /24 (0 = never seen in BGP)."""
        if self._dense is None:
            return np.zeros(np.asarray(blocks).shape, dtype=np.int64)
        out: I64 = self._dense[np.asarray(blocks, dtype=np.uint32) >> np.uint32(8)].astype(
            np.int64)
        return out
