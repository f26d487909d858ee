"""IODA's BGP signal: visible /24s (IPv4) and /48s (IPv6) per entity, from routing state.

State is per (collector peer, prefix): a RIB loads a collector's table (RFC 6396 TABLE_DUMP_V2)
and UPDATE elements roll it forward — announcements (and implicit withdrawals: a new
announcement replaces the peer's route, RFC 4271 §3.1), withdrawals, and session state changes
(a peer leaving Established loses every route it sent, RFC 4271 §8; RFC 6396 §4.4.1 codes).

Visibility follows IODA (anchors §1.2), with its constants as configuration:

* a peer is *full-feed* if it holds more than ``ff_v4`` IPv4 (``ff_v6`` IPv6) prefixes;
* a /24 (/48) is *visible* when more than ``fraction`` of the full-feed peers have *a route
  covering it* — coverage is per peer, so a withdrawn more-specific under a still-announced
  covering prefix stays visible, and a peer holding both counts once;
* prefixes shorter than ``min_v4``/``min_v6`` (default routes, bogus /0–/7) and longer than the
  unit (/25+, /49+) are ignored, in counting full-feed peers too;
* a country's count is the visible /24s the geo lookup places in it as of the bin; an AS's count
  is the visible /24s whose most-specific full-feed route it originates (majority over peers).

Counts are facts (tier 1): a collector that stops sending data is a source-health fact recorded
beside the series, never a drop in visibility.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from netvigil.model.facts import BgpVisibility
from netvigil.sources.bgp.fastrib import RibColumns, compiled
from netvigil.sources.bgp.fastupdates import K_ANNOUNCE, K_DOWN, K_WITHDRAW, elem_row
from netvigil.sources.bgp.mrt.elem import BgpElem
from netvigil.sources.bgp.mrt.types import AFI_IP, AFI_IP6

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class FullFeedRule:
    """Which peers count as *full-feed* for one address family: rules are data with ids.

    A peer is full-feed when its table (prefixes in the counted length range) holds **more
    than** ``floor`` prefixes **and at least** ``share`` of the largest table of that family
    held by any peer in the state at that instant. ``share = 0`` is an absolute rule (IODA's).
    """

    id: str
    family: int  # 4 or 6
    floor: int
    share: float
    cite: str

    def threshold(self, largest: int) -> int:
        """Counts strictly above this are full-feed (integer form of both conditions)."""
        return max(self.floor, math.ceil(self.share * largest) - 1)


#: Stable ids; ``netvigil bgp`` commands and :class:`VisibilityConfig` name rules by id.
FULL_FEED_RULES: dict[str, FullFeedRule] = {r.id: r for r in (
    FullFeedRule(
        "ff-v4-era", 4, 20_000, 0.8,
        "NetVigil, era-relative (docs/bgp.md 'Full-feed peers in every era'): IODA's 400k "
        "was ~0.8 of the May-2014 table (just under the 512k reached on 12 Aug 2014); the "
        "floor is below every full table since the RIS/RouteViews archives began"),
    FullFeedRule(
        "ff-v6-era", 6, 100, 0.8,
        "NetVigil, era-relative: the IPv4 share applied to IPv6; the floor keeps a handful "
        "of routes from making a peer full-feed"),
    FullFeedRule(
        "ff-v4-share", 4, 0, 0.8,
        "NetVigil: the era rule's share without its floor, for tables that hold one "
        "country's slice of the Internet (a reconstruction, a regional route server): no "
        "count of prefixes can say 'full' there, the share of the largest table still can"),
    FullFeedRule("ioda-ff-v4", 4, 400_000, 0.0,
                 "IODA bgp datasource: >400k IPv4 prefixes (anchors §1.2)"),
    FullFeedRule("ioda-ff-v6", 6, 10_000, 0.0,
                 "IODA bgp datasource: >10k IPv6 prefixes (anchors §1.2)"),
)}


@dataclass(frozen=True)
class VisibilityConfig:
    """IODA's visibility rules (anchors §1.2) with an era-relative full-feed rule.

    ``ff_rule_v4``/``ff_rule_v6`` name rules in :data:`FULL_FEED_RULES`. ``ff_v4``/``ff_v6``,
    when set, replace them with an absolute threshold (more than N prefixes), as IODA's rule
    and the small test fixtures need.
    """

    ff_v4: int | None = None
    ff_v6: int | None = None
    fraction: float = 0.5
    min_v4: int = 8
    min_v6: int = 16
    step: int = 300
    ff_rule_v4: str = "ff-v4-era"
    ff_rule_v6: str = "ff-v6-era"

    def __post_init__(self) -> None:
        for rid, fam in ((self.ff_rule_v4, 4), (self.ff_rule_v6, 6)):
            rule = FULL_FEED_RULES.get(rid)
            if rule is None or rule.family != fam:
                known = sorted(k for k, r in FULL_FEED_RULES.items() if r.family == fam)
                raise ValueError(f"unknown IPv{fam} full-feed rule {rid!r} (known: {known})")

    def rule(self, family: int) -> FullFeedRule:
        """The full-feed rule in force for ``family`` (an absolute override keeps its id)."""
        fixed = self.ff_v4 if family == 4 else self.ff_v6
        if fixed is not None:
            return FullFeedRule(f"absolute-v{family}>{fixed}", family, fixed, 0.0,
                                "caller-supplied absolute threshold")
        return FULL_FEED_RULES[self.ff_rule_v4 if family == 4 else self.ff_rule_v6]

    def rule_ids(self) -> tuple[str, str]:
        return self.rule(4).id, self.rule(6).id


@dataclass
class Snapshot:
    """Visibility at one instant (what :class:`BgpVisibility` carries, plus diagnostics)."""

    time: int
    full_feed_v4: int
    full_feed_v6: int
    visible_v4: int  # /24s
    visible_v6: int  # /48s
    v4_blocks: npt.NDArray[np.uint32]  # network address of every visible /24
    v4_origin: npt.NDArray[np.uint32]  # origin AS of each visible /24 (0 = unknown)
    v6_by_origin: dict[int, int] = field(default_factory=dict)
    # visible /48s as sorted disjoint intervals [v6_starts[i], v6_ends[i]) in /48 units
    v6_starts: I64 = field(default_factory=lambda: np.empty(0, np.int64))
    v6_ends: I64 = field(default_factory=lambda: np.empty(0, np.int64))
    # the full-feed decision: largest table per family and the count a peer had to exceed
    largest_v4: int = 0
    largest_v6: int = 0
    threshold_v4: int = 0
    threshold_v6: int = 0

    def to_fact(self, bin_start: int, step: int,
                silent_collectors: tuple[str, ...] = ()) -> BgpVisibility:
        """The per-bin fact sources emit (:class:`netvigil.model.facts.BgpVisibility`)."""
        return BgpVisibility(
            time=bin_start, step=step, full_feed_v4=self.full_feed_v4,
            full_feed_v6=self.full_feed_v6, v4_blocks=self.v4_blocks, v4_origin=self.v4_origin,
            v6_starts=self.v6_starts, v6_ends=self.v6_ends, v6_by_origin=dict(self.v6_by_origin),
            silent_collectors=tuple(silent_collectors))


def _key(gid: npt.NDArray[Any], afi: npt.NDArray[Any], net: U64,
         plen: npt.NDArray[Any]) -> U64:
    """Unique uint64 per (peer, family, prefix): gid<<50 | family<<49 | prefix code.

    The code of a prefix is ``2·net + 2^(W−len)`` over its W-bit unit space (33 bits for IPv4
    over 32-bit addresses, 49 bits for IPv6 over the top 48 bits), which is unique per prefix.
    """
    is6 = afi == AFI_IP6
    n = np.where(is6, net >> np.uint64(16), net)  # IPv6: top 48 bits
    w = np.where(is6, 48, 32).astype(np.uint64)
    code = (n << np.uint64(1)) | (np.uint64(1) << (w - plen.astype(np.uint64)))
    out: U64 = (
        (gid.astype(np.uint64) << np.uint64(50)) | (is6.astype(np.uint64) << np.uint64(49)) | code
    )
    return out


_GBITS = 13  # collector peers per state: 8192
_GMASK = (1 << _GBITS) - 1
_CODE_MASK = (1 << 50) - 1  # family bit 49 | prefix code


def _prefix_code(afi: npt.NDArray[Any], net: U64, plen: npt.NDArray[Any]) -> U64:
    """The (family, prefix) part of :func:`_key`: unique per prefix, IPv4 sorting first."""
    return _key(np.zeros(afi.shape[0], np.uint64), afi, net, plen)


def _decode_codes(pcode: U64) -> tuple[npt.NDArray[np.uint8], U64, npt.NDArray[np.uint8]]:
    """Prefix codes back to (afi, net, plen), ``net`` as :class:`RibColumns` holds it."""
    is6 = (pcode >> np.uint64(49)) & np.uint64(1)
    code = pcode & np.uint64((1 << 49) - 1)
    low = code & (~code + np.uint64(1))  # the marker bit 2^(W - len)
    tz = np.log2(np.maximum(low, np.uint64(1)).astype(np.float64)).astype(np.int64)  # exact
    w = np.where(is6 == 1, 48, 32)
    plen = (w - tz).astype(np.uint8)
    n = (code ^ low) >> np.uint64(1)
    net = np.where(is6 == 1, n << np.uint64(16), n)
    return np.where(is6 == 1, AFI_IP6, AFI_IP).astype(np.uint8), net, plen


class RoutingState:
    """Routes per (collector, peer, prefix): a sorted base from RIBs plus an update overlay.

    The base is stored per *route* in 12 bytes: ``pidx << 13 | gid`` (uint64, sorted, unique)
    and the origin AS (uint32), with one table of distinct prefixes (``_pcode``, sorted codes)
    shared by every peer — a 60-peer full table (~55 M routes) is ~0.7 GB, not 1.4 GB plus
    whole-table int64 temporaries.
    """

    def __init__(self, config: VisibilityConfig | None = None) -> None:
        self.config = config or VisibilityConfig()
        self._peers: dict[tuple[str, str, int], int] = {}
        self._peer_collector: list[str] = []
        self._pcode: npt.NDArray[Any] = np.empty(0, np.uint64)  # distinct prefixes, sorted
        self._key: npt.NDArray[Any] = np.empty(0, np.uint64)  # pidx << 13 | gid, sorted
        self._origin: npt.NDArray[Any] = np.empty(0, np.uint32)
        # overlay: what updates changed since the RIBs, as sorted unique keys (gid << 50 |
        # family bit 49 | prefix code) with the origin of each (-1: withdrawn), plus the
        # batches not folded in yet (in order; the last row of a key wins): an array per
        # batch, a Python list per element (:meth:`apply`), folded by :meth:`_fold`
        self._ov_key: npt.NDArray[np.uint64] = np.empty(0, np.uint64)
        self._ov_org: npt.NDArray[np.int64] = np.empty(0, np.int64)
        self._pending: list[tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64]]] = []
        self._one_key: list[int] = []
        self._one_org: list[int] = []
        self._down: set[int] = set()
        self._dense: _Dense | None = None  # snapshot scratch, kept between snapshots

    # ------------------------------------------------------------------ peers
    def peer_id(self, collector: str, ip: str, asn: int) -> int:
        k = (collector, ip, asn)
        gid = self._peers.get(k)
        if gid is None:
            gid = len(self._peers)
            if gid >= 1 << 13:
                raise ValueError("more than 8192 collector peers")
            self._peers[k] = gid
            self._peer_collector.append(collector)
        return gid

    @property
    def peers(self) -> list[tuple[str, str, int]]:
        return list(self._peers)

    # ------------------------------------------------------------------ loading
    def _in_range(self, afi: npt.NDArray[Any], plen: npt.NDArray[Any]
                  ) -> npt.NDArray[np.bool_]:
        c = self.config
        v4 = (afi == AFI_IP) & (plen >= c.min_v4) & (plen <= 24)
        v6 = (afi == AFI_IP6) & (plen >= c.min_v6) & (plen <= 48)
        out: npt.NDArray[np.bool_] = v4 | v6
        return out

    def load_rib(self, collector: str, cols: RibColumns) -> None:
        """Replace everything known about ``collector``'s peers with this RIB.

        A RIB record is one prefix with an entry per peer, so prefixes are found per *run* of
        equal (afi, net, plen) — ~1 M runs for a 60-peer table instead of ~55 M routes — and
        the routes are put in (prefix, peer) order by reordering whole runs, then sorting the
        peers inside each run (O(n); a full sort only without numba).
        """
        gmap = np.asarray(
            [self.peer_id(collector, ip, asn)
             for ip, asn in zip(cols.peer_ips, cols.peer_asns, strict=True)],
            dtype=np.uint64,
        )
        mine = np.asarray([c == collector for c in self._peer_collector], dtype=bool)
        self._keep_overlay(lambda g: ~mine[g])
        self._down -= {g for g in self._down if mine[g]}
        # runs of the new RIB
        n_new = len(cols)
        afi, net, plen = cols.afi, cols.net, cols.plen
        if n_new:
            chg = np.empty(n_new, dtype=bool)
            chg[0] = True
            np.not_equal(net[1:], net[:-1], out=chg[1:])
            chg[1:] |= plen[1:] != plen[:-1]
            chg[1:] |= afi[1:] != afi[:-1]
            starts = np.flatnonzero(chg)
            del chg
        else:
            starts = np.empty(0, np.int64)
        lens = np.diff(np.append(starts, n_new))
        r_afi = afi[starts].astype(np.uint8, copy=False)
        r_plen = plen[starts].astype(np.uint8, copy=False)
        r_in = self._in_range(r_afi, r_plen)
        r_code = _prefix_code(r_afi[r_in], net[starts][r_in], r_plen[r_in])
        starts, lens = starts[r_in], lens[r_in]
        # route peers as indices into gmap_all (other collectors' routes: gid + len(gmap))
        el_peer: npt.NDArray[Any] = cols.peer
        el_org: npt.NDArray[Any] = cols.origin
        gmap_all = gmap
        if self._key.size:  # other collectors' routes: already runs of one prefix each
            keep = ~mine[(self._key & np.uint64(_GMASK)).astype(np.intp)]
            ok = self._key[keep]
            op = ok >> np.uint64(_GBITS)
            o_starts = np.flatnonzero(np.concatenate([[True], op[1:] != op[:-1]])) if (
                op.size) else np.empty(0, np.int64)
            o_lens = np.diff(np.append(o_starts, op.size))
            r_code = np.concatenate([self._pcode[op[o_starts].astype(np.intp)], r_code])
            starts = np.concatenate([o_starts, starts + op.size])
            lens = np.concatenate([o_lens, lens])
            el_peer = np.concatenate([(ok & np.uint64(_GMASK)).astype(np.int64) + gmap.size,
                                      el_peer])
            gmap_all = np.concatenate([gmap, np.arange(len(self._peers), dtype=np.uint64)])
            el_org = np.concatenate([self._origin[keep], el_org])
            del ok, op, keep
        pcode, run_p = np.unique(r_code, return_inverse=True)
        run_p = run_p.astype(np.uint64)
        total = int(lens.sum())
        # runs in prefix order (stable); each run's elements stay contiguous
        perm = np.argsort(run_p, kind="stable")
        run_p, starts, lens = run_p[perm], starts[perm], lens[perm]
        del perm
        key = np.empty(total, np.uint64)
        org = np.empty(total, np.uint32)
        gather = compiled(_gather_runs_py, total)
        if gather is not None:
            gather(el_peer, gmap_all, el_org, starts, lens, run_p << np.uint64(_GBITS), key, org)
        else:
            key[:] = np.repeat(run_p, lens)
            key <<= np.uint64(_GBITS)
            if total == el_peer.size and (starts.size == 0 or bool(
                    np.all(starts[1:] == starts[:-1] + lens[:-1]))):
                order = None  # already in prefix order, nothing out of range
            else:
                order = np.arange(total, dtype=np.int64)
                order += np.repeat(starts - (np.cumsum(lens) - lens), lens)
            step = 1 << 23
            for i in range(0, total, step):
                src = el_peer[i:i + step] if order is None else el_peer[order[i:i + step]]
                key[i:i + step] |= gmap_all[src]
                org[i:i + step] = (el_org[i:i + step] if order is None
                                   else el_org[order[i:i + step]])
            del order
        del starts, el_peer, el_org
        # peers inside each run: stable sort by key (ADD-PATH duplicates keep file order)
        if total > 1 and bool(np.any(key[1:] < key[:-1])):
            sort_runs = compiled(_sort_runs_py, total)
            if sort_runs is not None:
                ends = np.cumsum(lens)
                if run_p.size > 1:  # a prefix may span runs (two collectors, repeated records)
                    ends = ends[np.append(run_p[1:] != run_p[:-1], True)]
                sort_runs(key, org, ends)
            else:
                order2 = np.argsort(key, kind="stable")
                key, org = key[order2], org[order2]
                del order2
        # a RIB may list a (peer, prefix) twice (ADD-PATH): keep the last
        last = np.ones(total, dtype=bool)
        last[:-1] = key[1:] != key[:-1]
        if last.all():
            self._key, self._origin = key, org
        else:
            self._key, self._origin = key[last], org[last]
        self._pcode = pcode

    # ------------------------------------------------------------------ updates
    def apply(self, collector: str, e: BgpElem) -> None:
        """Roll the state forward by one element (A, W or STATE), from its row
        (:func:`~netvigil.sources.bgp.fastupdates.elem_row`): what :meth:`apply_columns`
        does to the same row, without numpy's per-call cost (RIS Live, the simulator)."""
        from netvigil.sources.bgp.mrt.attributes import format_ip

        gid = self.peer_id(collector, format_ip(e.peer_ip), e.peer_asn)
        kind, afi, net, plen, origin = elem_row(e)
        if kind == K_DOWN:
            self.drop_peer(gid)
            return
        if kind not in (K_ANNOUNCE, K_WITHDRAW):
            return
        c = self.config
        if afi == AFI_IP:
            if not c.min_v4 <= plen <= 24:
                return
            key = (gid << 50) | (net << 1) | (1 << (32 - plen))
        else:
            if not c.min_v6 <= plen <= 48:
                return
            key = (gid << 50) | (1 << 49) | ((net >> 16) << 1) | (1 << (48 - plen))
        self._one_key.append(key)
        self._one_org.append(origin)

    def apply_columns(self, gid: npt.NDArray[np.int64], kind: npt.NDArray[np.uint8],
                      afi: npt.NDArray[np.uint8], net: npt.NDArray[np.uint64],
                      plen: npt.NDArray[np.uint8], origin: npt.NDArray[np.int64]) -> None:
        """Roll the state forward by rows in order (:class:`~netvigil.sources.bgp.
        fastupdates.UpdateColumns`; ``gid``: each row's peer, already registered).

        A run of announcements and withdrawals becomes one batch of keys (the last row of a
        (peer, prefix) wins, as one element at a time); a session that leaves Established
        (``K_DOWN``) ends a run and drops its peer's routes (:meth:`drop_peer`). Prefixes
        outside the counted lengths (IPv4 /min_v4-/24, IPv6 /min_v6-/48) are ignored.
        Key: peer in the top bits, family bit 49, then the prefix code (network shifted
        left one, a one bit below it marking the length), as :meth:`apply` computes it."""
        downs = np.flatnonzero(kind == K_DOWN).tolist()
        lo = 0
        for stop in [*downs, int(kind.size)]:
            if stop > lo:
                self._overlay_rows(gid[lo:stop], kind[lo:stop], afi[lo:stop], net[lo:stop],
                                   plen[lo:stop], origin[lo:stop])
            if stop < kind.size:
                self.drop_peer(int(gid[stop]))
            lo = stop + 1

    def _overlay_rows(self, gid: npt.NDArray[np.int64], kind: npt.NDArray[np.uint8],
                      afi: npt.NDArray[np.uint8], net: npt.NDArray[np.uint64],
                      plen: npt.NDArray[np.uint8], origin: npt.NDArray[np.int64]) -> None:
        use = ((kind == K_ANNOUNCE) | (kind == K_WITHDRAW)) & self._in_range(afi, plen)
        if not use.all():
            gid, afi, net, plen, origin = gid[use], afi[use], net[use], plen[use], origin[use]
        if not gid.size:
            return
        one = np.uint64(1)
        v6 = afi == AFI_IP6
        shift = np.where(v6, 48, 32).astype(np.uint64) - plen.astype(np.uint64)
        body = np.where(v6, net >> np.uint64(16), net)
        key = (gid.astype(np.uint64) << np.uint64(50)) | (v6.astype(np.uint64) << np.uint64(49)) \
            | (body << one) | (one << shift)
        self._flush_ones()
        self._pending.append((key, origin.astype(np.int64)))

    def _flush_ones(self) -> None:
        if self._one_key:
            self._pending.append((np.asarray(self._one_key, np.uint64),
                                  np.asarray(self._one_org, np.int64)))
            self._one_key, self._one_org = [], []

    def _fold(self) -> None:
        """Fold the pending batches into the sorted overlay: a stable sort by key, the last
        row of each key kept. Once per snapshot (or peer drop), not per element: the dict
        it replaces cost 1.3 s of updates and 2.3 s of rebuilds per session reset for
        959,000 elements (``benchmarks/bench_bgp_updates.py``, docs/bgp.md)."""
        self._flush_ones()
        if not self._pending:
            return
        keys = np.concatenate([self._ov_key, *(k for k, _ in self._pending)])
        org = np.concatenate([self._ov_org, *(o for _, o in self._pending)])
        self._pending = []
        order = np.argsort(keys, kind="stable")
        keys, org = keys[order], org[order]
        last = np.ones(keys.size, dtype=bool)
        last[:-1] = keys[1:] != keys[:-1]
        self._ov_key, self._ov_org = keys[last], org[last]

    def _keep_overlay(self, keep_gid: Any) -> None:
        """Keep the overlay rows whose peer passes ``keep_gid`` (a vectorised predicate)."""
        self._fold()
        if self._ov_key.size:
            keep = keep_gid((self._ov_key >> np.uint64(50)).astype(np.intp))
            self._ov_key, self._ov_org = self._ov_key[keep], self._ov_org[keep]

    def drop_peer(self, gid: int) -> None:
        """The session went down: every route it sent is gone (RFC 4271 §8, Cease/Idle).

        Routes the peer announces afterwards (the session re-established) count again.
        """
        self._down.add(gid)
        self._keep_overlay(lambda g: g != gid)

    def peer_up_routes(self, gid: int) -> None:  # pragma: no cover - symmetry helper
        self._down.discard(gid)

    # ------------------------------------------------------------------ current routes
    def _live(self) -> tuple[npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any], U64]:
        """(pidx, gid, origin) of every live route, and the prefix codes pidx points into.

        Base routes come first in key order; overlay routes follow, with prefixes the base
        does not know appended to the (then no longer sorted) prefix table.
        """
        key, pc = self._key, self._pcode
        self._fold()
        if not self._down and not self._ov_key.size:
            return ((key >> np.uint64(_GBITS)).astype(np.intp),
                    (key & np.uint64(_GMASK)).astype(np.int32), self._origin, pc)
        live = np.ones(key.size, dtype=bool)
        if self._down:
            live &= ~np.isin((key & np.uint64(_GMASK)).astype(np.int64),
                             np.fromiter(self._down, np.int64))
        opidx = np.empty(0, np.intp)
        ogid = np.empty(0, np.int32)
        oorg = np.empty(0, np.uint32)
        if self._ov_key.size:
            okeys = self._ov_key
            ocode = okeys & np.uint64(_CODE_MASK)
            og = (okeys >> np.uint64(50)).astype(np.int64)
            pos = np.searchsorted(pc, ocode)
            pos_c = np.minimum(pos, max(pc.size - 1, 0))
            known = (pos < pc.size) & (pc[pos_c] == ocode) if pc.size else (
                np.zeros(okeys.size, bool))
            bkey = (pos_c.astype(np.uint64) << np.uint64(_GBITS)) | og.astype(np.uint64)
            at = np.searchsorted(key, bkey[known])
            at_c = np.minimum(at, max(key.size - 1, 0))
            hit = (at < key.size) & (key[at_c] == bkey[known]) if key.size else (
                np.zeros(at.size, bool))
            live[at_c[hit]] = False
            org_all = self._ov_org
            # Overlay routes of a peer whose session dropped were cleared by ``drop_peer``, so
            # any still here were announced after the drop (the session came back): they count.
            # Only the peer's RIB routes from before the drop stay hidden (``_down``).
            keep = org_all >= 0
            new_codes = np.unique(ocode[keep & ~known])
            opidx = np.where(known, pos_c,
                             pc.size + np.searchsorted(new_codes, ocode)).astype(np.intp)[keep]
            ogid = og[keep].astype(np.int32)
            oorg = org_all[keep].astype(np.uint32)
            pc = np.concatenate([pc, new_codes])
        kl = key[live]
        return (np.concatenate([(kl >> np.uint64(_GBITS)).astype(np.intp), opidx]),
                np.concatenate([(kl & np.uint64(_GMASK)).astype(np.int32), ogid]),
                np.concatenate([self._origin[live], oorg]), pc)

    def routes(self) -> tuple[npt.NDArray[Any], ...]:
        """(gid, afi, net, plen, origin) of every live route."""
        pidx, gid, origin, pc = self._live()
        afi, net, plen = _decode_codes(pc)
        return gid, afi[pidx], net[pidx], plen[pidx], origin

    # ------------------------------------------------------------------ visibility
    def snapshot(self, when: int) -> Snapshot:
        """Visibility of the current state; full-feed peers by the config's rules as of now.

        Each peer's table size is counted per family over the counted prefix lengths, the
        largest gives the era-relative threshold (:meth:`FullFeedRule.threshold`).
        """
        pidx, gid, origin, pc = self._live()
        c = self.config
        p_afi, p_net, p_plen = _decode_codes(pc)
        r6 = p_afi[pidx] == AFI_IP6
        if r6.any():
            v4 = ~r6
            big4, thr4 = _threshold(gid[v4], c.rule(4))
            b4, o4, ff4 = self._v4(pidx[v4], gid[v4], origin[v4], p_net, p_plen, thr4)
            p6 = pidx[r6]
            big6, thr6 = _threshold(gid[r6], c.rule(6))
            n6, by6, ff6, a6, e6 = _visible_v6(gid[r6], p_net[p6], p_plen[p6], origin[r6],
                                               thr6, c.fraction)
        else:
            big4, thr4 = _threshold(gid, c.rule(4))
            b4, o4, ff4 = self._v4(pidx, gid, origin, p_net, p_plen, thr4)
            n6, by6, ff6 = 0, {}, 0
            big6, thr6 = 0, c.rule(6).threshold(0)
            a6, e6 = np.empty(0, np.int64), np.empty(0, np.int64)
        return Snapshot(when, ff4, ff6, int(b4.size), n6, b4, o4, by6, a6, e6,
                        big4, big6, thr4, thr6)

    def _v4(self, pidx: npt.NDArray[Any], gid: npt.NDArray[Any], origin: npt.NDArray[Any],
            p_net: U64, p_plen: npt.NDArray[Any], threshold: int
            ) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32], int]:
        """:func:`_visible_v4_dense` on this state's scratch, taken for the call: a snapshot
        that raises leaves none behind, so a scratch with stale entries is never reused."""
        dense, self._dense = self._dense or _Dense(), None
        out = _visible_v4_dense(pidx, gid, origin, p_net, p_plen, threshold,
                                self.config.fraction, dense)
        self._dense = dense
        return out


def _threshold(gid: npt.NDArray[Any], rule: FullFeedRule) -> tuple[int, int]:
    """(largest table, count to exceed) for the routes of one family."""
    largest = int(np.bincount(gid).max()) if gid.size else 0
    return largest, rule.threshold(largest)


def _gather_runs_py(peer: npt.NDArray[Any], gmap: U64, org_in: npt.NDArray[Any], starts: I64,
                    lens: I64, run_key: U64, key: U64, org: npt.NDArray[np.uint32]) -> None:
    """key/org of every route, run after run: ``run_key | gmap[peer]`` (compiled path)."""
    n = 0
    for r in range(starts.size):
        s = starts[r]
        pk = run_key[r]
        for i in range(s, s + lens[r]):
            key[n] = pk | gmap[peer[i]]
            org[n] = org_in[i]
            n += 1


def _sort_runs_py(key: U64, org: npt.NDArray[np.uint32], ends: I64) -> None:
    """Stable insertion sort of ``key`` (carrying ``org``) inside each ``[ends[i-1], ends[i])``.

    Each span is one prefix's entries (a few dozen peers), so this is linear in practice.
    """
    lo = 0
    for hi in ends:
        for i in range(lo + 1, hi):
            k = key[i]
            o = org[i]
            j = i - 1
            while j >= lo and key[j] > k:
                key[j + 1] = key[j]
                org[j + 1] = org[j]
                j -= 1
            key[j + 1] = k
            org[j + 1] = o
        lo = hi


class _Dense:
    """The arrays a snapshot paints over the 2^24 /24s, kept by the :class:`RoutingState`
    with every entry zero between snapshots (each snapshot resets what it wrote).

    Allocating them per snapshot (224 MB, huge pages: numpy advises them for big arrays) made
    the kernel zero them every time: 32 of 87 CPU ms per snapshot were system time on the
    scaling benchmark's 200 k-route state, and two workers doing it at once on 2 cores
    competed for memory bandwidth (docs/scaling.md). Cost: the pages the snapshots touched
    stay resident while the state lives (at most 224 MB).
    """

    def __init__(self) -> None:
        self.cov = np.zeros(1 << 24, np.uint64)  # OR of the full-feed peers' bits
        self.count = np.zeros(1 << 24, np.uint16)  # full-feed peers covering the /24
        self.paint = np.zeros(1 << 24, np.uint32)  # origin of the most specific prefix
        #: work of this state's snapshots so far (routes read, /24s painted): what the
        #: compiled kernels are gated on (:func:`netvigil.sources.bgp.fastrib.compiled`), so
        #: a state that snapshots every bin pays numba's once-per-process load once its
        #: snapshots together have that much work, not only when one snapshot has
        self.routes = 0
        self.painted = 0


Span = tuple[npt.NDArray[np.int64], npt.NDArray[np.intp], int]


def _spans(start: I64, plen: npt.NDArray[Any]) -> list[Span]:
    """Per prefix length, shortest first: (the /24s the prefixes cover, which prefixes, /24s
    per prefix). Prefixes of one length are disjoint, so a span's /24s are distinct and
    fancy indexing over them is exact; a /24 under prefixes of several lengths is in
    several spans."""
    out: list[Span] = []
    for length in np.unique(plen).tolist():
        sel = np.flatnonzero(plen == length)
        size = 1 << (24 - int(length))
        st = start[sel]
        idx = st if size == 1 else (st[:, None] + np.arange(size, dtype=np.int64)).ravel()
        out.append((idx, sel, size))
    return out


def _spread(values: npt.NDArray[Any], sel: npt.NDArray[np.intp], size: int
            ) -> npt.NDArray[Any]:
    """The span's prefixes' values, one per /24 they cover."""
    v = values[sel]
    return v if size == 1 else np.repeat(v, size)


def _visible_v4_dense(
    pidx: npt.NDArray[Any], gid: npt.NDArray[Any], origin: npt.NDArray[Any], p_net: U64,
    p_plen: npt.NDArray[Any], threshold: int, fraction: float, dense: _Dense,
) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32], int]:
    """Visible /24s from per-prefix peer bitmaps painted over a dense /24 array.

    Per prefix, one bit per full-feed peer (64 peers per pass); OR-painting the bitmaps of all
    prefixes over the 2^24 /24s gives each /24 the set of peers with a covering route (the
    per-peer union), and its popcount is compared with ``fraction`` of the full-feed peers.
    Memory is bounded by ``dense`` (2^24 × (8 + 2 + 4) bytes, reused: its pages are not
    zeroed again per snapshot) and the route columns; the work per snapshot, by the /24s
    the prefixes cover and one pass over ``count``.
    """
    empty = np.empty(0, np.uint32)
    if gid.size == 0:
        return empty, empty, 0
    ffg = np.bincount(gid) > threshold
    nff = int(ffg.sum())
    if nff == 0:
        return empty, empty, 0
    rank = np.cumsum(ffg) - 1
    npfx = p_net.size
    words = (nff + 63) // 64
    dense.routes += int(gid.size)
    kern = compiled(_prefix_bits_py, dense.routes)
    if kern is not None:  # one compiled pass over the routes
        gword = np.where(ffg, rank >> 6, -1).astype(np.int64)
        gbit = np.where(ffg, np.uint64(1) << (rank & 63).astype(np.uint64), np.uint64(0))
        bits_w = np.zeros((words, npfx), np.uint64)
        best = np.full(npfx, np.iinfo(np.uint32).max, np.uint32)
        hi = np.zeros(npfx, np.uint32)
        kern(pidx, gid, origin, gword, gbit, bits_w, best, hi)
        used = np.flatnonzero(best <= hi)  # prefixes some full-feed peer routes
        moas = best != hi
        moas[best > hi] = False
        if moas.any():
            sel = moas[pidx] & ffg[gid]
            _moas_fix(best, pidx[sel], origin[sel])
            del sel
        del hi, moas
        word_bits: list[npt.NDArray[np.uint64]] = [bits_w[w][used] for w in range(words)]
        del bits_w
    else:
        isff = ffg[gid]
        if isff.all():
            fp, fr, fo = pidx, rank[gid], origin
        else:
            fp, fr, fo = pidx[isff], rank[gid[isff]], origin[isff]
        del isff
        present = np.zeros(npfx, bool)
        present[fp] = True
        used = np.flatnonzero(present)
        word_bits = []
        for w in range(words):
            if nff > 64:
                m = (fr >> 6) == w
                wp, wr = fp[m], fr[m]
            else:
                wp, wr = fp, fr
            bits = np.zeros(npfx, np.uint64)
            # (peer, prefix) is unique in the state, so adding distinct bits is OR
            np.add.at(bits, wp, np.uint64(1) << (wr & 63).astype(np.uint64))
            word_bits.append(bits[used])
            del bits
        best = _majority_by_prefix(fp, fo, npfx)
    start24 = (p_net[used] >> np.uint64(8)).astype(np.int64)
    above = min(math.floor(fraction * nff), 0xFFFF)
    sizes = np.left_shift(np.int64(1), 24 - p_plen[used].astype(np.int64))
    dense.painted += int(sizes.sum())
    paint = compiled(_paint_py, dense.painted)
    if paint is not None:
        return _paint_compiled(paint, start24, sizes, p_plen[used], word_bits, best[used],
                               above, dense, nff)
    spans = _spans(start24, p_plen[used])
    cov, count = dense.cov, dense.count
    for wb in word_bits:
        for idx, sel, size in spans:
            cov[idx] |= _spread(wb, sel, size)
        for idx, _, _ in spans:
            # a /24 in several spans is counted at its first and zero after (cov reset)
            count[idx] += np.bitwise_count(cov[idx])
            cov[idx] = 0
    del word_bits
    # count > fraction*nff as integers (count > floor of it: a third of the float compare's
    # time over 2^24 entries); >= 1, so only /24s painted here
    blocks = np.flatnonzero(count > np.uint16(above))
    for idx, _, _ in spans:
        count[idx] = 0
    if blocks.size == 0:
        return empty, empty, nff
    # shortest first, the most specific last: every /24 in blocks is written here, so the
    # paint of an earlier snapshot is never read and needs no reset
    for idx, sel, size in spans:
        dense.paint[idx] = _spread(best[used], sel, size)
    return (blocks << 8).astype(np.uint32), dense.paint[blocks], nff


def _paint_compiled(kern: Any, start: I64, size: I64, plen: npt.NDArray[Any],
                    word_bits: list[npt.NDArray[np.uint64]], best: npt.NDArray[np.uint32],
                    above: int, dense: _Dense, nff: int
                    ) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32], int]:
    """The span part of :func:`_visible_v4_dense` through the compiled :func:`_paint_py`:
    the same /24s and origins, without the numpy path's per-span index and value arrays
    (8 bytes each per /24 covered, several passes: measured on the scaling benchmark's
    epochs, that path was most of a snapshot's time, and two workers doing it at once
    slowed each other down: docs/scaling.md, "BGP snapshots compiled")."""
    empty = np.empty(0, np.uint32)
    bits = np.ascontiguousarray(np.stack(word_bits)) if word_bits else \
        np.zeros((0, start.size), np.uint64)
    # the /24 passes visit prefixes by address, so the scratch is read and written in one
    # direction and the blocks come out in ascending order (:func:`_paint_py`); the
    # painting, shortest prefix first
    by_addr = np.argsort(start, kind="stable").astype(np.int64)
    by_len = np.argsort(plen, kind="stable").astype(np.int64)
    blocks = np.empty(int(size.sum()), np.int64)
    m = kern(start, size, by_addr, by_len, bits, best, above, dense.cov, dense.count,
             dense.paint, blocks)
    if m == 0:
        return empty, empty, nff
    found = blocks[:m]
    return (found << 8).astype(np.uint32), dense.paint[found], nff


def _paint_py(start: I64, size: I64, by_addr: I64, by_len: I64, bits: npt.NDArray[np.uint64],
              best: npt.NDArray[np.uint32], above: int, cov: U64,
              count: npt.NDArray[np.uint16], paint: npt.NDArray[np.uint32],
              blocks: I64) -> int:
    """Compiled span loops of :func:`_visible_v4_dense`, equal to its numpy path: per word,
    OR every prefix's bits over the /24s it covers, then add each /24's popcount to
    ``count`` and clear it (a /24 under several prefixes is counted once per word); the
    /24s whose count exceeds ``above`` into ``blocks`` (unsorted, each once: its count is
    cleared when first read), every count cleared; then the origins painted shortest
    prefix first (``by_len``), so the most specific wins. The /24 passes take the prefixes
    in ``by_addr`` order (by first /24), so ``blocks`` comes out ascending: CIDR prefixes
    are nested or disjoint, so a prefix visited later either lies inside one visited before
    (all its /24s already read and cleared) or starts where the earlier ones end or after
    them, or shares their first /24 and covers them (those /24s cleared, the rest above).
    Returns how many blocks."""
    n = start.size
    for w in range(bits.shape[0]):
        for j in range(n):
            i = by_addr[j]
            b = bits[w, i]
            for k in range(start[i], start[i] + size[i]):
                cov[k] |= b
        for j in range(n):
            i = by_addr[j]
            for k in range(start[i], start[i] + size[i]):
                c = cov[k]
                if c != 0:  # popcount (SWAR; uint64 throughout, wrapping multiply)
                    c = c - ((c >> np.uint64(1)) & np.uint64(0x5555555555555555))
                    c = (c & np.uint64(0x3333333333333333)) + \
                        ((c >> np.uint64(2)) & np.uint64(0x3333333333333333))
                    c = (c + (c >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
                    count[k] += (c * np.uint64(0x0101010101010101)) >> np.uint64(56)
                    cov[k] = 0
    m = 0
    for j in range(n):
        i = by_addr[j]
        for k in range(start[i], start[i] + size[i]):
            c2 = count[k]
            if c2 != 0:
                if c2 > above:
                    blocks[m] = k
                    m += 1
                count[k] = 0
    for j in range(n):
        i = by_len[j]
        o = best[i]
        for k in range(start[i], start[i] + size[i]):
            paint[k] = o
    return m


def _prefix_bits_py(pidx: npt.NDArray[Any], gid: npt.NDArray[Any], origin: npt.NDArray[Any],
                    gword: I64, gbit: U64, bits: npt.NDArray[np.uint64],
                    lo: npt.NDArray[np.uint32], hi: npt.NDArray[np.uint32]) -> None:
    """Per prefix: OR of its full-feed peers' bits (word ``gword[g]``), min and max origin."""
    for i in range(pidx.size):
        g = gid[i]
        w = gword[g]
        if w >= 0:
            p = pidx[i]
            bits[w, p] |= gbit[g]
            o = origin[i]
            if o < lo[p]:
                lo[p] = o
            if o > hi[p]:
                hi[p] = o


def _moas_fix(best: npt.NDArray[np.uint32], fp: npt.NDArray[Any], fo: npt.NDArray[Any]) -> None:
    """Set ``best`` for prefixes seen with several origins: most routes, ties to smallest AS.
    ``fp``/``fo`` are all full-feed routes of those prefixes."""
    pair = (fp.astype(np.int64) << 32) | fo.astype(np.int64)
    up, cnt = np.unique(pair, return_counts=True)
    pid = up >> 32
    org = up & 0xFFFFFFFF
    order = np.lexsort((org, -cnt, pid))
    first = np.ones(order.size, dtype=bool)
    first[1:] = pid[order][1:] != pid[order][:-1]
    best[pid[order][first]] = org[order][first]


def _majority_by_prefix(fp: npt.NDArray[Any], fo: npt.NDArray[Any], npfx: int
                        ) -> npt.NDArray[np.uint32]:
    """Per prefix, the origin most routes name (ties: the smallest AS)."""
    fo = fo.astype(np.uint32, copy=False)
    lo = np.full(npfx, np.iinfo(np.uint32).max, np.uint32)
    hi = np.zeros(npfx, np.uint32)
    np.minimum.at(lo, fp, fo)
    np.maximum.at(hi, fp, fo)
    best = lo
    multi = lo[fp] != hi[fp]  # prefixes with more than one origin (MOAS): count them
    if multi.any():
        _moas_fix(best, fp[multi], fo[multi])
    return best


def _full_feed(gid: npt.NDArray[Any], threshold: int) -> tuple[npt.NDArray[np.bool_], int]:
    if gid.size == 0:
        return np.zeros(0, bool), 0
    counts = np.bincount(gid)
    ff = counts > threshold
    return ff[gid], int(ff.sum())


def _covered_pieces(gid: I64, start: I64, end: I64) -> tuple[I64, I64]:
    """Per-peer union of [start, end) intervals, as disjoint pieces (any order of input)."""
    order = np.lexsort((start, gid))
    g, s, e = gid[order], start[order], end[order]
    span = np.int64(1) << np.int64(49)
    acc = np.maximum.accumulate(g * span + e)  # running max of end within each peer
    prev = np.empty_like(acc)
    prev[0] = -1
    prev[1:] = acc[:-1]
    same = np.empty(g.size, dtype=bool)
    same[0] = False
    same[1:] = g[1:] == g[:-1]
    prev_end = np.where(same, prev - g * span, np.int64(-1))
    ps = np.maximum(s, prev_end)
    ok = e > ps
    return ps[ok], e[ok]


def _sweep(ps: I64, pe: I64, need: float) -> tuple[I64, I64]:
    """Segments [a, b) covered by more than ``need`` pieces."""
    pos = np.concatenate([ps, pe])
    delta = np.concatenate([np.ones(ps.size, np.int64), -np.ones(pe.size, np.int64)])
    order = np.argsort(pos, kind="stable")
    pos, delta = pos[order], delta[order]
    cover = np.cumsum(delta)
    uniq_last = np.ones(pos.size, dtype=bool)
    uniq_last[:-1] = pos[1:] != pos[:-1]
    p, cv = pos[uniq_last], cover[uniq_last]
    if p.size < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    seg_ok = cv[:-1] > need
    return p[:-1][seg_ok], p[1:][seg_ok]


def _majority_origin(unit_start: I64, plen: I64, origin: I64) -> tuple[I64, I64, I64]:
    """Unique prefixes (start, plen) with the origin most full-feed peers saw (ties: smallest)."""
    pkey = (unit_start << 7) | plen
    uk, inv = np.unique(pkey, return_inverse=True)
    pair = (inv.astype(np.int64) << 33) | origin
    up, cnt = np.unique(pair, return_counts=True)
    pid = up >> 33
    org = up & ((1 << 33) - 1)
    order = np.lexsort((org, -cnt, pid))
    first = np.ones(order.size, dtype=bool)
    first[1:] = pid[order][1:] != pid[order][:-1]
    best = np.empty(uk.size, dtype=np.int64)
    best[pid[order][first]] = org[order][first]
    return uk >> 7, uk & 127, best


def _visible_v4(
    gid: npt.NDArray[Any], net: U64, plen: npt.NDArray[Any], origin: npt.NDArray[Any],
    threshold: int, fraction: float,
) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32], int]:
    is_ff, nff = _full_feed(gid, threshold)
    if nff == 0:
        return np.empty(0, np.uint32), np.empty(0, np.uint32), 0
    g = gid[is_ff].astype(np.int64)
    n = net[is_ff].astype(np.int64)
    p = plen[is_ff].astype(np.int64)
    o = origin[is_ff].astype(np.int64)
    start = n >> 8
    del n
    end = start + (np.int64(1) << (24 - p))
    ps, pe = _covered_pieces(g, start, end)
    a, b = _sweep(ps, pe, fraction * nff)
    if a.size == 0:
        return np.empty(0, np.uint32), np.empty(0, np.uint32), nff
    counts = b - a
    blocks = np.repeat(a, counts) + (
        np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    )
    # origin of the most specific route over each /24: paint shortest prefixes first
    us, ul, uo = _majority_origin(start, p, o)
    paint = np.zeros(1 << 24, dtype=np.uint32)
    for length in range(int(ul.min()), 25):
        m = ul == length
        if not m.any():
            continue
        size = 1 << (24 - length)
        st = us[m]
        if size == 1:
            paint[st] = uo[m]
        else:
            idx = (st[:, None] + np.arange(size, dtype=np.int64)[None, :]).ravel()
            paint[idx] = np.repeat(uo[m], size)
    return (blocks << 8).astype(np.uint32), paint[blocks], nff


def _v6_owners_py(order: Any, us: Any, ue: Any, bounds: Any, va: Any, vb: Any, acc: Any,
                  first: Any, stack: Any) -> None:
    """Credit each visible /48 to the innermost prefix covering it (most-specific route).

    A sweep over the elementary intervals between consecutive prefix boundaries
    (``bounds``) with a stack of the prefixes open there (``order``: start ascending,
    enclosing first); ``[va, vb)``: the visible intervals, sorted and disjoint. Adds each
    interval's visible /48s to ``acc[innermost]`` and records in ``first`` the interval
    index of a prefix's first credit; ``stack``: scratch as long as ``order``. Compiled
    (numba) when there is enough work; the same function on lists otherwise (equal
    results)."""
    n = len(order)
    top = 0
    nx = 0
    vi = 0
    nv = len(va)
    for k in range(len(bounds) - 1):
        lo = bounds[k]
        hi = bounds[k + 1]
        while top > 0 and ue[stack[top - 1]] <= lo:
            top -= 1
        while nx < n and us[order[nx]] <= lo:
            stack[top] = order[nx]
            top += 1
            nx += 1
        while top > 0 and ue[stack[top - 1]] <= lo:
            top -= 1
        if top == 0:
            continue
        while vi < nv and vb[vi] <= lo:
            vi += 1
        j = vi
        covered = 0
        while j < nv and va[j] < hi:
            covered += min(hi, vb[j]) - max(lo, va[j])
            j += 1
        if covered > 0:
            t = stack[top - 1]
            if acc[t] == 0:
                first[t] = k
            acc[t] += covered


def _visible_v6(
    gid: npt.NDArray[Any], net: U64, plen: npt.NDArray[Any], origin: npt.NDArray[Any],
    threshold: int, fraction: float,
) -> tuple[int, dict[int, int], int, I64, I64]:
    """Visible /48s: total, per origin AS (most-specific route; sparse sweep, no dense array),
    full-feed peers, and the visible intervals ``[a, b)`` in /48 units (sorted, disjoint)."""
    is_ff, nff = _full_feed(gid, threshold)
    none = np.empty(0, np.int64)
    if nff == 0:
        return 0, {}, 0, none, none
    g = gid[is_ff].astype(np.int64)
    p = plen[is_ff].astype(np.int64)
    o = origin[is_ff].astype(np.int64)
    start = (net[is_ff] >> np.uint64(16)).astype(np.int64)
    end = start + (np.int64(1) << (48 - p))
    ps, pe = _covered_pieces(g, start, end)
    a, b = _sweep(ps, pe, fraction * nff)
    total = int((b - a).sum())
    if total == 0:
        return 0, {}, nff, none, none
    us, ul, uo = _majority_origin(start, p, o)
    ue = us + (np.int64(1) << (48 - ul))
    # containment order: start ascending, shorter (enclosing) prefixes first
    order = np.lexsort((ul, us))
    bounds = np.union1d(us, ue)
    acc = np.zeros(us.size, np.int64)
    first = np.zeros(us.size, np.int64)
    # once numba is in the process (any full-size RIB or update group loads it) this runs
    # every bin, so the per-call work threshold of `compiled` does not apply
    owner = compiled(_v6_owners_py, None if "numba" in sys.modules else 4 * us.size)
    if owner is not None:
        owner(order, us, ue, bounds, a, b, acc, first, np.empty(us.size, np.int64))
    else:  # lists: a Python loop indexes them several times faster than arrays
        acc_l, first_l = acc.tolist(), first.tolist()
        _v6_owners_py(order.tolist(), us.tolist(), ue.tolist(), bounds.tolist(), a.tolist(),
                      b.tolist(), acc_l, first_l, [0] * us.size)
        acc, first = np.asarray(acc_l, np.int64), np.asarray(first_l, np.int64)
    hit = np.flatnonzero(acc)
    by: dict[int, int] = {}
    # per origin AS, in the order each was first credited (the bound of its first piece)
    for k in hit[np.argsort(first[hit], kind="stable")].tolist():
        asn = int(uo[k])
        by[asn] = by.get(asn, 0) + int(acc[k])
    return total, by, nff, a, b
