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

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from netvigil.sources.bgp.fastrib import RibColumns
from netvigil.sources.bgp.mrt.elem import BgpElem
from netvigil.sources.bgp.mrt.types import AFI_IP, AFI_IP6, STATE_ESTABLISHED

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class VisibilityConfig:
    """IODA's thresholds (anchors §1.2); lower them for small fixtures."""

    ff_v4: int = 400_000
    ff_v6: int = 10_000
    fraction: float = 0.5
    min_v4: int = 8
    min_v6: int = 16
    step: int = 300


@dataclass
class Snapshot:
    """Visibility at one instant."""

    time: int
    full_feed_v4: int
    full_feed_v6: int
    visible_v4: int  # /24s
    visible_v6: int  # /48s
    v4_blocks: npt.NDArray[np.uint32]  # network address of every visible /24
    v4_origin: npt.NDArray[np.uint32]  # origin AS of each visible /24 (0 = unknown)
    v6_by_origin: dict[int, int] = field(default_factory=dict)


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


class RoutingState:
    """Routes per (collector, peer, prefix): a sorted base from RIBs plus an update overlay."""

    def __init__(self, config: VisibilityConfig | None = None) -> None:
        self.config = config or VisibilityConfig()
        self._peers: dict[tuple[str, str, int], int] = {}
        self._peer_collector: list[str] = []
        # base: sorted by key
        # compact dtypes: 26 bytes per route (a 60-peer full table is ~55 M routes)
        self._key = np.empty(0, np.uint64)
        self._gid = np.empty(0, np.int32)
        self._afi = np.empty(0, np.uint8)
        self._net = np.empty(0, np.uint64)
        self._plen = np.empty(0, np.uint8)
        self._origin = np.empty(0, np.uint32)
        # overlay: key -> (gid, afi, net, plen, origin or -1 when withdrawn)
        self._overlay: dict[int, tuple[int, int, int, int, int]] = {}
        self._down: set[int] = set()

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
        """Replace everything known about ``collector``'s peers with this RIB."""
        gmap = np.asarray(
            [self.peer_id(collector, ip, asn)
             for ip, asn in zip(cols.peer_ips, cols.peer_asns, strict=True)],
            dtype=np.int64,
        )
        mine = np.asarray([c == collector for c in self._peer_collector], dtype=bool)
        keep_old = ~mine[self._gid] if self._gid.size else np.empty(0, bool)
        self._overlay = {k: v for k, v in self._overlay.items() if not mine[v[0]]}
        self._down -= {g for g in self._down if mine[g]}
        afi = cols.afi.astype(np.uint8, copy=False)
        plen = cols.plen.astype(np.uint8, copy=False)
        sel = self._in_range(afi, plen)
        gid = (gmap[cols.peer[sel]].astype(np.int32) if gmap.size
               else np.empty(0, np.int32))
        net, afi, plen = cols.net[sel], afi[sel], plen[sel]
        key = _key(gid, afi, net, plen)
        parts = [
            (self._key[keep_old], self._gid[keep_old], self._afi[keep_old],
             self._net[keep_old], self._plen[keep_old], self._origin[keep_old]),
            (key, gid, afi, net, plen, cols.origin[sel].astype(np.uint32, copy=False)),
        ]
        allk = np.concatenate([p[0] for p in parts]) if self._key.size else key
        del key
        order = np.argsort(allk, kind="stable")
        allk = allk[order]
        # a RIB may list a (peer, prefix) twice (ADD-PATH): keep the last
        last = np.ones(allk.size, dtype=bool)
        last[:-1] = allk[1:] != allk[:-1]
        order = order[last]
        self._key = allk[last]
        self._gid = np.concatenate([p[1] for p in parts])[order]
        self._afi = np.concatenate([p[2] for p in parts])[order]
        self._net = np.concatenate([p[3] for p in parts])[order]
        self._plen = np.concatenate([p[4] for p in parts])[order]
        self._origin = np.concatenate([p[5] for p in parts])[order]

    # ------------------------------------------------------------------ updates
    def apply(self, collector: str, e: BgpElem) -> None:
        """Roll the state forward by one element (A, W or STATE)."""
        from netvigil.sources.bgp.mrt.attributes import format_ip

        gid = self.peer_id(collector, format_ip(e.peer_ip), e.peer_asn)
        if e.kind == "STATE":
            if e.old_state == STATE_ESTABLISHED and e.new_state != STATE_ESTABLISHED:
                self.drop_peer(gid)
            return
        n = e.nlri
        if n is None:
            return
        plen = n.plen
        c = self.config
        if n.afi == AFI_IP:
            if not c.min_v4 <= plen <= 24:
                return
            net = int.from_bytes(n.addr, "big")
            code = (net << 1) | (1 << (32 - plen))
            key = (gid << 50) | code
        else:
            if not c.min_v6 <= plen <= 48:
                return
            net = int.from_bytes(n.addr[:8], "big")
            code = ((net >> 16) << 1) | (1 << (48 - plen))
            key = (gid << 50) | (1 << 49) | code
        origin = -1
        if e.kind in ("A", "B"):
            a = e.attrs
            o = a.origin_asns() if a is not None else ()
            origin = o[-1] if o else 0
        self._overlay[key] = (gid, n.afi, net, plen, origin)

    def drop_peer(self, gid: int) -> None:
        """The session went down: every route it sent is gone (RFC 4271 §8, Cease/Idle)."""
        self._down.add(gid)
        self._overlay = {k: v for k, v in self._overlay.items() if v[0] != gid}

    def peer_up_routes(self, gid: int) -> None:  # pragma: no cover - symmetry helper
        self._down.discard(gid)

    # ------------------------------------------------------------------ current routes
    def routes(self) -> tuple[npt.NDArray[Any], ...]:
        """(gid, afi, net, plen, origin) of every live route (views when nothing changed)."""
        if not self._down and not self._overlay:
            return self._gid, self._afi, self._net, self._plen, self._origin
        live = np.ones(self._key.size, dtype=bool)
        if self._down:
            live &= ~np.isin(self._gid, np.fromiter(self._down, np.int64))
        ov = self._overlay
        if ov:
            okeys = np.fromiter(ov.keys(), dtype=np.uint64, count=len(ov))
            pos = np.searchsorted(self._key, okeys)
            pos_c = np.minimum(pos, max(self._key.size - 1, 0))
            hit = (pos < self._key.size) & (self._key[pos_c] == okeys) if self._key.size else (
                np.zeros(okeys.size, bool))
            live[pos_c[hit]] = False
            vals = [v for v in ov.values() if v[4] >= 0 and v[0] not in self._down]
            if vals:
                arr = np.array([(v[0], v[1], v[3], v[4]) for v in vals], dtype=np.int64)
                onet = np.fromiter((v[2] for v in vals), dtype=np.uint64, count=len(vals))
                return (
                    np.concatenate([self._gid[live], arr[:, 0].astype(np.int32)]),
                    np.concatenate([self._afi[live], arr[:, 1].astype(np.uint8)]),
                    np.concatenate([self._net[live], onet]),
                    np.concatenate([self._plen[live], arr[:, 2].astype(np.uint8)]),
                    np.concatenate([self._origin[live], arr[:, 3].astype(np.uint32)]),
                )
        return self._gid[live], self._afi[live], self._net[live], self._plen[live], (
            self._origin[live])

    # ------------------------------------------------------------------ visibility
    def snapshot(self, when: int) -> Snapshot:
        gid, afi, net, plen, origin = self.routes()
        c = self.config
        v4 = afi == AFI_IP
        b4, o4, ff4 = _visible_v4(gid[v4], net[v4], plen[v4], origin[v4], c.ff_v4, c.fraction)
        v6 = ~v4
        n6, by6, ff6 = _visible_v6(gid[v6], net[v6], plen[v6], origin[v6], c.ff_v6, c.fraction)
        return Snapshot(when, ff4, ff6, int(b4.size), n6, b4, o4, by6)


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


def _visible_v6(
    gid: npt.NDArray[Any], net: U64, plen: npt.NDArray[Any], origin: npt.NDArray[Any],
    threshold: int, fraction: float,
) -> tuple[int, dict[int, int], int]:
    """Visible /48s, total and per origin AS (most-specific route; sparse sweep, no dense array)."""
    is_ff, nff = _full_feed(gid, threshold)
    if nff == 0:
        return 0, {}, 0
    g = gid[is_ff].astype(np.int64)
    p = plen[is_ff].astype(np.int64)
    o = origin[is_ff].astype(np.int64)
    start = (net[is_ff] >> np.uint64(16)).astype(np.int64)
    end = start + (np.int64(1) << (48 - p))
    ps, pe = _covered_pieces(g, start, end)
    a, b = _sweep(ps, pe, fraction * nff)
    total = int((b - a).sum())
    if total == 0:
        return 0, {}, nff
    us, ul, uo = _majority_origin(start, p, o)
    ue = us + (np.int64(1) << (48 - ul))
    by: Counter[int] = Counter()
    # containment order: start ascending, shorter (enclosing) prefixes first
    order = np.lexsort((ul, us))
    stack: list[tuple[int, int]] = []  # (end, origin)
    bounds = sorted(set(us.tolist()) | set(ue.tolist()))
    # elementary intervals between consecutive prefix boundaries, owned by the innermost prefix
    it = iter(order.tolist())
    nxt = next(it, None)
    vis = list(zip(a.tolist(), b.tolist(), strict=True))
    vi = 0
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        while stack and stack[-1][0] <= lo:
            stack.pop()
        while nxt is not None and us[nxt] <= lo:
            stack.append((int(ue[nxt]), int(uo[nxt])))
            nxt = next(it, None)
        while stack and stack[-1][0] <= lo:
            stack.pop()
        if not stack:
            continue
        while vi < len(vis) and vis[vi][1] <= lo:
            vi += 1
        j = vi
        covered = 0
        while j < len(vis) and vis[j][0] < hi:
            covered += min(hi, vis[j][1]) - max(lo, vis[j][0])
            j += 1
        if covered > 0:
            by[stack[-1][1]] += covered
    return total, dict(by), nff
