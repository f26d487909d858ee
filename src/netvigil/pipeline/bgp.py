"""BGP visibility facts → visible /24s (and /48s) per entity: IODA's ``bgp`` signal (anchors §1.2).

The sources (:mod:`netvigil.sources.bgp.ingest` for archives, :mod:`.rislive` for RIS Live and
the reconstructions through :class:`~netvigil.sources.bgp.visibility.RoutingState`) decide
*which* units are visible and emit one :class:`~netvigil.model.facts.BgpVisibility` per bin;
the full-feed and visibility rules live there, once (:class:`VisibilityConfig`). This module
only places the visible units in entities, as of the bin:

* ``bgp`` per **country**: :meth:`GeoLookup.bulk_blocks` of each visible /24 at the bin time;
* ``bgp`` per **region** (ISO 3166-2): :meth:`GeoLookup.bulk_regions` (interval tables built
  once from the mmdb), when a region mmdb is configured;
* ``bgp`` per **AS**: the origin AS of each visible /24's most-specific route (0 = unknown,
  not counted);
* ``bgp-v6`` per AS (visible /48s by origin) and per country (visible /48 runs intersected
  with the country ranges as of the bin, :func:`overlap_by_value`).

Missing versus zero: an entity measured in an earlier bin and absent now is a **measured 0**
(its prefixes were withdrawn: exactly what a shutdown looks like), but a bin whose fact has no
full-feed peer for a family is *missing* for that family — no point at all, so a collector
outage never reads as a national withdrawal.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from netvigil.geo.lookup import GeoLookup
from netvigil.model.entities import EntityType, make_ref
from netvigil.model.errors import InvalidEntity
from netvigil.model.facts import BgpVisibility, PointBatch

SOURCE = "bgp"
SIGNAL_V4 = "bgp"
SIGNAL_V6 = "bgp-v6"

Key = tuple[str, str, str]  # (entity type, code, signal)


class BgpAggregator:
    """Per-entity counts of one :class:`BgpVisibility` fact, with the entities seen before.

    State across facts: the set of ``(entity, signal)`` measured so far (for the measured
    zeros) and the canonical form of every region code met.
    """

    def __init__(self, geo: GeoLookup) -> None:
        self.geo = geo
        self._seen: set[Key] = set()
        self._region_canon: dict[str, str | None] = {}

    def points(self, fact: BgpVisibility) -> list[PointBatch]:
        counts: dict[Key, float] = {}
        measured: set[str] = set()
        if fact.full_feed_v4 > 0:
            measured.add(SIGNAL_V4)
            self._v4(fact, counts)
        if fact.full_feed_v6 > 0:
            measured.add(SIGNAL_V6)
            self._v6(fact, counts)
        for key in self._seen:
            if key[2] in measured:
                counts.setdefault(key, 0.0)
        self._seen.update(counts)
        return [_batch(counts, fact.time, fact.step)]

    # ------------------------------------------------------------------ IPv4
    def _v4(self, fact: BgpVisibility, counts: dict[Key, float]) -> None:
        blocks = fact.v4_blocks
        if blocks.size == 0:
            return
        loc = self.geo.bulk_blocks(blocks, fact.time, with_asn=False)
        _add_counts(counts, EntityType.COUNTRY.value, loc.countries, loc.country_idx, SIGNAL_V4)
        if self.geo.has_regions:
            reg = self.geo.bulk_regions(blocks, fact.time)
            codes = [self._canon_region(c) for c in reg.regions]
            _add_counts(counts, EntityType.REGION.value, codes, reg.region_idx, SIGNAL_V4)
        asns, n = np.unique(fact.v4_origin, return_counts=True)
        for a, c in zip(asns.tolist(), n.tolist(), strict=True):
            if a:
                counts[(EntityType.ASN.value, str(a), SIGNAL_V4)] = float(c)

    def _canon_region(self, code: str) -> str | None:
        """Registry form of an mmdb region code; None for a code that is not ISO 3166-2."""
        if code not in self._region_canon:
            try:
                self._region_canon[code] = make_ref(EntityType.REGION, code).code
            except InvalidEntity:
                self._region_canon[code] = None
        return self._region_canon[code]

    # ------------------------------------------------------------------ IPv6
    def _v6(self, fact: BgpVisibility, counts: dict[Key, float]) -> None:
        for a, c in fact.v6_by_origin.items():
            if a:
                counts[(EntityType.ASN.value, str(a), SIGNAL_V6)] = float(c)
        if fact.v6_starts.size:
            rng = self.geo.country_ranges_v6(fact.time)
            per = overlap_by_value(fact.v6_starts, fact.v6_ends, rng.starts, rng.ends,
                                   rng.country_idx, len(rng.countries))
            for idx in np.flatnonzero(per):
                counts[(EntityType.COUNTRY.value, rng.countries[idx], SIGNAL_V6)] = float(
                    per[idx])


def _add_counts(counts: dict[Key, float], etype: str, codes: list[str] | list[str | None],
                idx: npt.NDArray[np.integer], signal: str) -> None:
    """Count units per code index (−1 and None codes are not counted; equal codes add)."""
    ii = idx.astype(np.int64, copy=False)
    ok = ii >= 0
    if not ok.any():
        return
    bc = np.bincount(ii[ok], minlength=len(codes))
    for k in np.flatnonzero(bc).tolist():
        code = codes[k]
        if code is not None:
            key = (etype, code, signal)
            counts[key] = counts.get(key, 0.0) + float(bc[k])


def _batch(counts: dict[Key, float], t: int, step: int) -> PointBatch:
    n = len(counts)
    keys = list(counts)
    et = np.empty(n, dtype=object)
    code = np.empty(n, dtype=object)
    sig = np.empty(n, dtype=object)
    et[:] = [k[0] for k in keys]
    code[:] = [k[1] for k in keys]
    sig[:] = [k[2] for k in keys]
    return PointBatch(et, code, sig, np.full(n, t, dtype=np.int64),
                      np.fromiter(counts.values(), dtype=np.float64, count=n), SOURCE, step)


def overlap_by_value(a: npt.NDArray[np.int64], b: npt.NDArray[np.int64],
                     starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64],
                     values: npt.NDArray[np.int64], n_values: int) -> npt.NDArray[np.int64]:
    """Per value, the length of ``∪[a, b)`` inside the ranges ``[starts, ends)`` carrying it.

    Both lists are sorted and disjoint. ``F(x)`` = covered length below ``x`` is the length of
    the intervals ending by ``x`` plus the part of the one straddling it (one searchsorted per
    range bound), so each range's overlap is ``F(end) − F(start)``.
    """
    out = np.zeros(n_values, dtype=np.int64)
    if a.size == 0 or starts.size == 0:
        return out
    cum = np.concatenate([[0], np.cumsum(b - a)])

    def covered_below(x: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        i = np.searchsorted(a, x, side="right")  # intervals starting before x
        j = np.maximum(i - 1, 0)
        part = np.where(i > 0, np.clip(x - a[j], 0, b[j] - a[j]), 0)
        res: npt.NDArray[np.int64] = cum[j] + part
        return np.where(i > 0, res, 0)

    lens = covered_below(ends) - covered_below(starts)
    ok = (lens > 0) & (values >= 0)
    np.add.at(out, values[ok], lens[ok])
    return out
