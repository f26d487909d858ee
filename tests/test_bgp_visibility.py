"""Visibility engine: full-feed peers, covering routes, peer sessions, IPv6 /48s."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest

from netvigil.sources.bgp.fastrib import RibColumns, read_rib_columns
from netvigil.sources.bgp.mrt import MrtReader
from netvigil.sources.bgp.mrt.attributes import format_ip
from netvigil.sources.bgp.mrt.elem import BgpElem
from netvigil.sources.bgp.visibility import RoutingState, VisibilityConfig

FIX = Path(__file__).parent / "fixtures" / "mrt"


def _cols(routes: list[tuple[int, int, str, int]], peers: int = 3) -> RibColumns:
    """(peer, afi, prefix, origin) rows → RibColumns."""
    import ipaddress

    c = RibColumns(0, [f"10.0.0.{i}" for i in range(peers)], [65000 + i for i in range(peers)], "")
    nets = []
    for _, afi, pfx, _ in routes:
        n = ipaddress.ip_network(pfx)
        nets.append(int(n.network_address) if afi == 1 else int(n.network_address) >> 64)
    c.peer = np.array([r[0] for r in routes], np.int32)
    c.afi = np.array([r[1] for r in routes], np.uint8)
    c.net = np.array(nets, np.uint64)
    c.plen = np.array([int(r[2].split("/")[1]) for r in routes], np.uint8)
    c.origin = np.array([r[3] for r in routes], np.uint32)
    return c


def test_fast_rib_columns_equal_the_generic_reader_on_a_real_47_peer_rib() -> None:
    path = FIX / "rib.20140523.0600_firstMB.bz2"
    cols = read_rib_columns(path)
    assert len(cols) == 270_005 and cols.stats.truncated == 1
    slow = sorted(
        (format_ip(e.peer_ip), int.from_bytes(e.nlri.addr[:4], "big"), e.nlri.plen,
         (e.attrs.origin_asns() or (0,))[-1])
        for e in MrtReader(path) if e.nlri is not None and e.attrs is not None
    )
    fast = sorted((cols.peer_ips[p], n, pl, o) for p, n, pl, o in zip(
        cols.peer.tolist(), cols.net.tolist(), cols.plen.tolist(), cols.origin.tolist(),
        strict=True))
    assert fast == slow


def test_fast_rib_handles_addpath_ipv6_and_two_peer_tables() -> None:
    for name in ("bview.ipv6_unicast_add_path.gz", "bird6-mrtdump_rib",
                 "bview.64k_stream_overflow.gz"):
        cols = read_rib_columns(FIX / name)
        assert len(cols) == sum(1 for _ in MrtReader(FIX / name)), name


def test_visible_24s_match_a_naive_count_on_a_real_rib() -> None:
    cols = read_rib_columns(FIX / "rib.20140523.0600_firstMB.bz2")
    state = RoutingState(VisibilityConfig(ff_v4=5000))
    state.load_rib("route-views2", cols)
    snap = state.snapshot(cols.timestamp)
    per_peer: dict[int, set[tuple[int, int]]] = collections.defaultdict(set)
    for p, n, pl in zip(cols.peer.tolist(), cols.net.tolist(), cols.plen.tolist(), strict=True):
        if 8 <= pl <= 24:
            per_peer[p].add((n >> 8, pl))
    full = [p for p, s in per_peer.items() if len(s) > 5000]
    cover: collections.Counter[int] = collections.Counter()
    for p in full:
        blocks: set[int] = set()
        for start, pl in per_peer[p]:
            blocks.update(range(start, start + (1 << (24 - pl))))
        cover.update(blocks)
    naive = sorted(b for b, c in cover.items() if c > 0.5 * len(full))
    assert snap.full_feed_v4 == len(full) == 31
    assert sorted((snap.v4_blocks >> 8).tolist()) == naive
    assert snap.visible_v4 == 384_277


def test_withdrawn_more_specific_stays_visible_under_its_covering_prefix() -> None:
    cfg = VisibilityConfig(ff_v4=0)
    routes = [(p, 1, pfx, 100) for p in range(3) for pfx in ("10.0.0.0/16", "10.0.5.0/24")]
    routes += [(p, 1, f"10.9.{p}.0/24", 100) for p in range(3)]  # one per peer: never visible
    state = RoutingState(cfg)
    state.load_rib("c", _cols(routes))
    assert state.snapshot(0).visible_v4 == 256
    for p in range(3):
        e = _withdraw(p, "10.0.5.0/24")
        state.apply("c", e)
    assert state.snapshot(0).visible_v4 == 256
    for p in range(2):
        state.apply("c", _withdraw(p, "10.0.0.0/16"))
    assert state.snapshot(0).visible_v4 == 0  # one of three peers is not a majority


def test_session_down_drops_the_peers_routes_and_its_full_feed_status() -> None:
    cfg = VisibilityConfig(ff_v4=1)
    routes = [(p, 1, pfx, 100) for p in range(3) for pfx in ("10.0.0.0/24", "10.0.1.0/24")]
    routes += [(0, 1, "10.9.0.0/24", 100)]
    state = RoutingState(cfg)
    state.load_rib("c", _cols(routes))
    assert state.snapshot(0).full_feed_v4 == 3
    down = BgpElem("BGP4MP", 1, None, "STATE", bytes([10, 0, 0, 1]), 65001, old_state=6,
                   new_state=1)
    state.apply("c", down)
    snap = state.snapshot(1)
    assert snap.full_feed_v4 == 2 and snap.visible_v4 == 2


def test_routes_announced_after_a_session_reset_count_again() -> None:
    import ipaddress

    from netvigil.sources.bgp.mrt.attributes import AS_SEQUENCE, Nlri, PathAttributes

    cfg = VisibilityConfig(ff_v4=0)  # a peer with any route is full-feed
    routes = [(p, 1, pfx, 100) for p in range(3) for pfx in ("10.0.0.0/24", "10.0.1.0/24")]
    state = RoutingState(cfg)
    state.load_rib("c", _cols(routes))
    for p in (1, 2):  # two of three sessions reset: peer 0 is the only full-feed peer left
        state.apply("c", BgpElem("BGP4MP", 1, None, "STATE", bytes([10, 0, 0, p]), 65000 + p,
                                 old_state=6, new_state=1))
    before = state.snapshot(1)
    assert (before.full_feed_v4, before.visible_v4) == (1, 2)
    n = ipaddress.ip_network("10.0.1.0/24")
    attrs = PathAttributes(as_path=[(AS_SEQUENCE, [65001, 100])])
    state.apply("c", BgpElem("BGP4MP", 2, None, "A", bytes([10, 0, 0, 1]), 65001,
                             Nlri(1, n.network_address.packed, n.prefixlen), attrs))
    # Peer 1 is back and re-announced 10.0.1.0/24, so it is full-feed again: both
    # full-feed peers carry 10.0.1.0/24; 10.0.0.0/24 has 1 of 2, not more than half.
    snap = state.snapshot(2)
    assert snap.full_feed_v4 == 2 and snap.visible_v4 == 1


def test_ipv6_counts_visible_48s_per_origin_most_specific_wins() -> None:
    cfg = VisibilityConfig(ff_v6=0)
    routes = [(p, 2, "2001:db8::/32", 64500) for p in range(2)]
    routes += [(p, 2, "2001:db8:1::/48", 64501) for p in range(2)]
    state = RoutingState(cfg)
    state.load_rib("c", _cols(routes, peers=2))
    snap = state.snapshot(0)
    assert snap.visible_v6 == 1 << 16
    assert snap.v6_by_origin == {64500: (1 << 16) - 1, 64501: 1}


def _withdraw(peer: int, prefix: str) -> BgpElem:
    import ipaddress

    from netvigil.sources.bgp.mrt.attributes import Nlri

    n = ipaddress.ip_network(prefix)
    return BgpElem("BGP4MP", 1, None, "W", bytes([10, 0, 0, peer]), 65000 + peer,
                   Nlri(1, n.network_address.packed, n.prefixlen))


def _v6_withdraw(peer: int, prefix: str) -> BgpElem:
    import ipaddress

    from netvigil.sources.bgp.mrt.attributes import Nlri

    n = ipaddress.ip_network(prefix)
    return BgpElem("BGP4MP", 1, None, "W", bytes([10, 0, 0, peer]), 65000 + peer,
                   Nlri(2, n.network_address.packed, n.prefixlen))


# real 2022-01-04 ranges: 2a00:12f8::/32 is KZ, 2001:4220::/32 is EG; 2001:678::/36 holds
# RIPE PI /48s of several countries (2001:678:98::/48 is KZ), so it straddles ranges
V6_PREFIXES = ["2a00:12f8::/40", "2001:4220::/44", "2001:678::/36"]


def _brute_v6_countries(prefixes: list[str]) -> collections.Counter[str]:
    """Visible /48s per country by enumerating every /48 and looking it up one by one in the
    2022-01-04 snapshot's own (un-reindexed) table."""
    import datetime as dt
    import ipaddress

    from netvigil.geo.refdata import load_shipped_snapshots

    snap = next(s for s in load_shipped_snapshots() if s.date == dt.date(2022, 1, 4))
    keys: set[int] = set()
    for pfx in prefixes:
        n = ipaddress.ip_network(pfx)
        first = int(n.network_address) >> 80
        keys.update(range(first, first + (1 << (48 - n.prefixlen))))
    out: collections.Counter[str] = collections.Counter()
    for v in snap.v6.lookup(np.array(sorted(keys), np.int64)).tolist():
        if v >= 0:
            out[snap.countries[v]] += 1
    return out


def test_ipv6_visible_intervals_give_per_country_48_counts() -> None:
    from netvigil.geo import GeoLookup
    from netvigil.pipeline.bgp import overlap_by_value

    geo = GeoLookup.default()
    when = 1_641_340_800  # 2022-01-05: the 2022-01-04 snapshot answers
    state = RoutingState(VisibilityConfig(ff_v6=0))
    routes = [(p, 2, pfx, 64500 + i) for p in range(2) for i, pfx in enumerate(V6_PREFIXES)]
    state.load_rib("c", _cols(routes, peers=2))

    def per_country(snap_time: int) -> dict[str, int]:
        snap = state.snapshot(snap_time)
        assert int((snap.v6_ends - snap.v6_starts).sum()) == snap.visible_v6
        assert np.all(snap.v6_starts[1:] >= snap.v6_ends[:-1])
        rng = geo.country_ranges_v6(when)
        assert rng.snapshot_date is not None and rng.snapshot_date.isoformat() == "2022-01-04"
        per = overlap_by_value(snap.v6_starts, snap.v6_ends, rng.starts, rng.ends,
                               rng.country_idx, len(rng.countries))
        return {rng.countries[i]: int(per[i]) for i in np.flatnonzero(per)}

    got = per_country(0)
    want = _brute_v6_countries(V6_PREFIXES)
    assert got == dict(want)
    assert got["KZ"] == 256 + 1 and got["EG"] == 16 and len(got) > 3
    for p in range(2):
        state.apply("c", _v6_withdraw(p, "2001:4220::/44"))
    after = per_country(1)
    assert "EG" not in after
    assert after == dict(_brute_v6_countries(["2a00:12f8::/40", "2001:678::/36"]))


def _dense_inputs(seed: int) -> tuple[np.ndarray, ...]:
    """Random routes of 80 peers (70 above the threshold: two 64-bit words of peer bits)
    over nested prefixes of seven lengths, several origins per prefix (MOAS)."""
    rng = np.random.default_rng(seed)
    plens = np.array([14, 16, 19, 20, 22, 23, 24])
    p_plen = rng.choice(plens, 3_000).astype(np.uint8)
    base = rng.integers(1, 224, p_plen.size) << 24 | rng.integers(0, 1 << 24, p_plen.size)
    p_net = (base >> (32 - p_plen.astype(np.int64)) << (32 - p_plen.astype(np.int64))
             ).astype(np.uint64)
    pidx, gid = [], []
    for g in range(80):
        take = rng.choice(p_plen.size, 2_000 if g < 70 else 300, replace=False)
        pidx.append(take)
        gid.append(np.full(take.size, g))
    pidx_a, gid_a = np.concatenate(pidx), np.concatenate(gid)
    origin = rng.integers(64_500, 64_504, pidx_a.size).astype(np.uint32)
    return pidx_a, gid_a, origin, p_net, p_plen


def test_compiled_snapshot_equals_the_numpy_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled span kernels (prefix bits, painting) and the numpy path give the same
    /24s and origins, snapshot after snapshot on one reused scratch, and leave it clean."""
    from netvigil.sources.bgp import fastrib, visibility

    out = {}
    for mode, min_work in (("numpy", 1 << 62), ("compiled", 0)):
        monkeypatch.setattr(fastrib, "NUMBA_MIN_WORK", min_work)
        monkeypatch.setattr(fastrib, "_COMPILED", {})  # nothing loaded before: gate applies
        dense = visibility._Dense()
        got = []
        for seed in (1, 2):
            b, o, nff = visibility._visible_v4_dense(*_dense_inputs(seed), 1_000, 0.5, dense)
            assert not dense.cov.any() and not dense.count.any()
            got.append((b.tolist(), o.tolist(), nff))
        out[mode] = got
        assert (mode == "compiled") == (visibility._paint_py in fastrib._COMPILED
                                        and fastrib._COMPILED[visibility._paint_py]
                                        is not None)
    assert out["numpy"] == out["compiled"]
    assert out["numpy"][0][2] == 70 and len(out["numpy"][0][0]) > 1_000


def _owners_by_loop(us: np.ndarray, ue: np.ndarray, uo: np.ndarray, a: np.ndarray,
                    b: np.ndarray) -> dict[int, int]:
    """The innermost-prefix credit of visible /48s, as the sweep was written before it was
    compiled (the oracle): per elementary interval, the stack's top prefix's origin."""
    by: collections.Counter[int] = collections.Counter()
    order = np.lexsort((us - ue, us))  # start ascending, longer (enclosing) first
    stack: list[tuple[int, int]] = []
    bounds = sorted(set(us.tolist()) | set(ue.tolist()))
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
        j, covered = vi, 0
        while j < len(vis) and vis[j][0] < hi:
            covered += min(hi, vis[j][1]) - max(lo, vis[j][0])
            j += 1
        if covered > 0:
            by[stack[-1][1]] += covered
    return dict(by)


@pytest.mark.parametrize("compiled_path", [True, False])
def test_v6_visibility_by_origin_equals_the_plain_sweep(
        compiled_path: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """``_visible_v6``'s per-origin /48s (the compiled sweep, and the same function on
    lists) against the plain sweep, on random nested IPv6 tables of 5 full-feed peers."""
    from netvigil.sources.bgp import visibility as vis

    if not compiled_path:
        monkeypatch.setattr(vis, "compiled", lambda fn, work=None: None)
    else:
        assert vis.compiled(vis._v6_owners_py, None) is not None
    rng = np.random.default_rng(4)
    checked = 0
    for _ in range(20):
        n = int(rng.integers(50, 400))
        plen = rng.integers(19, 49, n)
        # few distinct high bits, so prefixes nest (a /19 holds /34s that differ below it)
        net = ((rng.integers(0, 4, n).astype(np.uint64) << np.uint64(58))
               | (rng.integers(0, 16, n).astype(np.uint64) << np.uint64(50))
               | (rng.integers(0, 4, n).astype(np.uint64) << np.uint64(30)))
        net &= ~((np.uint64(1) << (np.uint64(64) - plen.astype(np.uint64))) - np.uint64(1))
        gid = rng.integers(0, 5, n)
        origin = rng.integers(1, 6, n)
        total, by, nff, a, b = vis._visible_v6(gid, net, plen, origin, threshold=1,
                                               fraction=0.3)
        if not total:
            continue
        us, ul, uo = vis._majority_origin((net >> np.uint64(16)).astype(np.int64),
                                          plen.astype(np.int64), origin.astype(np.int64))
        ue = us + (np.int64(1) << (48 - ul))
        want = _owners_by_loop(us, ue, uo, a, b)
        assert by == want and list(by) == list(want)
        assert sum(by.values()) <= total
        checked += len(want) > 1
    assert checked >= 10
