"""BGP facts → visible /24s per entity (IODA's ``bgp`` signal, anchors §1.2).

Rule: a peer is **full-feed** in a bin when its IPv4 table holds more than 400k prefixes; a /24
is **visible** when *more than* 50% of that bin's full-feed peers carry a route covering it
(exactly half is not visible). A peer whose session is down has table size 0, drops out of the
denominator and so cannot make prefixes look withdrawn. A bin without any full-feed peer is
missing (NaN), not zero.

How: the covered /24 space is cut into *atoms* — maximal runs of /24s covered by the same set
of prefixes. An atom's per-peer coverage is the OR of its covering prefixes' peer bitmasks,
visibility is a popcount comparison, and per-entity counts are one matrix product with the
atom × entity /24 counts. Work is O(bins × atoms), independent of the number of /24s.

Partition key: ``(bin window, prefix/atom shard)``. Bins are independent (no state), so any
window aggregates alone; atom shards merge by addition (:meth:`EntityMatrix.merge`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from netvigil.pipeline.entities import EntityMatrix, Grouping
from netvigil.sources.kz2022 import BgpFacts

U32 = npt.NDArray[np.uint32]
I64 = npt.NDArray[np.int64]

SIGNAL = "bgp"
FULL_FEED_MIN = 400_000


@dataclass(frozen=True, eq=False)
class Atoms:
    """Runs of /24s with one covering prefix set: ``bounds`` in /24 units, per-prefix spans."""

    bounds: I64  # atom a covers /24 indices [bounds[a], bounds[a+1])
    prefix_span: npt.NDArray[np.intp]  # [prefixes, 2] atom index range of each prefix
    covered: npt.NDArray[np.bool_]  # atom has at least one covering prefix

    def blocks(self) -> U32:
        """The covered /24 network addresses, sorted."""
        parts = [np.arange(self.bounds[a], self.bounds[a + 1], dtype=np.int64)
                 for a in np.flatnonzero(self.covered)]
        if not parts:
            return np.empty(0, dtype=np.uint32)
        return (np.concatenate(parts) << 8).astype(np.uint32)

    def atom_of(self, block_starts: U32) -> I64:
        idx = np.searchsorted(self.bounds, block_starts.astype(np.int64) >> 8, side="right") - 1
        ok = (idx >= 0) & (idx < self.covered.size)
        ok[ok] &= self.covered[idx[ok]]
        return np.asarray(np.where(ok, idx, -1), dtype=np.int64)


def build_atoms(prefix_net: U32, prefix_len: npt.NDArray[np.uint8]) -> Atoms:
    lo = prefix_net.astype(np.int64) >> 8
    hi = lo + (np.int64(1) << (24 - prefix_len.astype(np.int64)))
    bounds = np.unique(np.concatenate([lo, hi]))
    span = np.stack([np.searchsorted(bounds, lo), np.searchsorted(bounds, hi)], axis=1)
    covered = np.zeros(max(0, bounds.size - 1), dtype=bool)
    for a0, a1 in span.tolist():
        covered[a0:a1] = True
    return Atoms(bounds, span, covered)


def atom_masks(facts: BgpFacts, atoms: Atoms, bins: slice | None = None) -> U32:
    """[bins, atoms] bitmask of peers carrying some route covering each atom."""
    carried = facts.carried[bins or slice(0, facts.n_bins)]
    out = np.zeros((carried.shape[0], atoms.covered.size), dtype=np.uint32)
    for p, (a0, a1) in enumerate(atoms.prefix_span.tolist()):
        if a1 - a0 == 1:
            out[:, a0] |= carried[:, p]
        else:
            out[:, a0:a1] |= carried[:, p][:, None]
    return out


def full_feed_mask(facts: BgpFacts, bins: slice | None = None) -> U32:
    sizes = facts.table_size[bins or slice(0, facts.n_bins)]
    bits = (np.uint32(1) << np.arange(facts.peer_asns.size, dtype=np.uint32)).astype(np.uint32)
    ff = sizes > FULL_FEED_MIN
    mask: U32 = (ff.astype(np.uint32) * bits).sum(axis=1, dtype=np.uint64).astype(np.uint32)
    return mask


def visible(masks: U32, ff: U32) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Visibility per bin × atom (> 50% of full-feed peers) and per-bin 'has full-feed peers'."""
    n_ff = np.bitwise_count(ff).astype(np.int64)
    carriers = np.bitwise_count(masks & ff[:, None]).astype(np.int64)
    return 2 * carriers > n_ff[:, None], n_ff > 0


def aggregate_bgp(facts: BgpFacts, atoms: Atoms, block_atom: I64, groupings: list[Grouping],
                  *, bins: slice | None = None) -> list[EntityMatrix]:
    """``bgp`` (visible /24s per bin) for each grouping over the located covered /24s.

    ``block_atom[j]`` is the atom of located /24 ``j`` (−1 outside every prefix); each
    grouping's ``index`` is aligned with those /24s.
    """
    bs = bins or slice(0, facts.n_bins)
    vis, has_ff = visible(atom_masks(facts, atoms, bs), full_feed_mask(facts, bs))
    visf = vis.astype(np.float64)
    n_atoms = atoms.covered.size
    first = bs.start or 0
    out: list[EntityMatrix] = []
    for g in groupings:
        ok = (block_atom >= 0) & (g.index >= 0)
        weights = np.zeros((n_atoms, len(g.refs)))
        np.add.at(weights, (block_atom[ok], g.index[ok]), 1.0)
        value = visf @ weights
        observed = np.where(has_ff[:, None], weights.sum(axis=0)[None, :], 0.0)
        out.append(EntityMatrix(SIGNAL, facts.start + first * facts.step, facts.step, g.refs,
                                value, np.broadcast_to(observed, value.shape).copy()))
    return out
