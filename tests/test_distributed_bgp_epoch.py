"""The epoch worker's two savings keep the single process's output (docs/scaling.md, BGP):
an epoch stops at the next epoch's RIBs without loading them only when every bin it keeps is
already closed (otherwise it loads them, as before), and a routing state's snapshots reuse
one painted /24 scratch without carrying a /24 from one snapshot into the next."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from netvigil.distributed.bgp import _Collect, epoch_files, epochs
from netvigil.model.facts import BgpVisibility
from netvigil.sources.bgp.fastrib import read_rib_columns
from netvigil.sources.bgp.ingest import BgpIngester, discover
from netvigil.sources.bgp.visibility import RoutingState, Snapshot, VisibilityConfig
from netvigil.testing.mrt_encode import write_rib
from test_distributed_bgp import T0, _archive

CFG = VisibilityConfig(ff_v4=2)


def _key(f: BgpVisibility) -> tuple[object, ...]:
    return (f.time, f.full_feed_v4, f.full_feed_v6, f.v4_blocks.tolist(), f.v4_origin.tolist(),
            f.v6_starts.tolist(), f.v6_ends.tolist(), sorted(f.v6_by_origin.items()),
            f.silent_collectors)


def _first_epoch(root: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]],
                                      int, int]:
    """(facts of the first epoch's bins from one process over every file, the same from the
    epoch's worker; bins measured by the worker, by one process over the epoch's files)."""
    files = discover([], root, None)
    ep = epochs(files, shared=False)[0]
    assert ep == (None, T0 + 3600)
    whole = _Collect(ep, CFG.step)
    BgpIngester(whole, config=CFG).run(files)
    mine = epoch_files(files, ep)
    worker = _Collect(ep, CFG.step)
    rep = BgpIngester(worker, config=CFG).run(mine, end=ep[1])
    full = BgpIngester(_Collect(ep, CFG.step), config=CFG).run(mine)
    return ([_key(f) for f in whole.facts], [_key(f) for f in worker.facts], rep.bins,
            full.bins)


def test_epoch_stops_at_the_next_rib_once_its_bins_are_closed(tmp_path: Path) -> None:
    _archive(tmp_path / "a")  # updates up to 00:55: the 00:55 bin closes before the RIB
    want, got, bins, full = _first_epoch(tmp_path / "a")
    assert len(want) == 12 and got == want
    # the 01:00 RIB was neither loaded nor measured (without ``end``: its bin too)
    assert (bins, full) == (12, 13)


def test_epoch_loads_the_next_rib_when_its_bins_are_still_open(tmp_path: Path) -> None:
    """Updates stop at 00:25: bins 00:30-00:55 are closed (carried forward) only by reaching
    the 01:00 RIB, so the worker reads it as one process does."""
    _archive(tmp_path / "a")
    for f in (tmp_path / "a").rglob("updates.20220105.00[345]*.gz"):
        f.unlink()
    want, got, bins, full = _first_epoch(tmp_path / "a")
    assert len(want) == 12 and got == want
    assert bins == full == 13  # loaded, and the 01:00 bin measured after it (then dropped)


PEERS = [(f"10.0.{i // 250}.{i % 250 + 1}", 65_000 + i) for i in range(70)]  # two words


def _rib(path: Path, routes: dict[str, int], peers: range) -> RoutingState:
    write_rib(path, T0, "192.0.2.1", PEERS,
              {p: [(i, [PEERS[i][1], 3356, o]) for i in peers] for p, o in routes.items()})
    return RoutingState(CFG)


def _snap(s: Snapshot) -> tuple[object, ...]:
    return (s.full_feed_v4, s.v4_blocks.tolist(), s.v4_origin.tolist())


def test_snapshot_scratch_carries_nothing_into_the_next_snapshot(tmp_path: Path) -> None:
    """Nested prefixes (a /16 over a /24 and a /22 of another origin), 70 full-feed peers
    (two 64-bit words of peer bits), then a table without them: a state that measured the
    first table answers for the second exactly as a state that never saw the first."""
    wide = {"41.32.0.0/16": 8452, "41.32.1.0/24": 24_863, "41.32.8.0/22": 36_935,
            "95.56.0.0/16": 9198}
    narrow = {"2.57.100.0/24": 9198, "41.33.0.0/22": 8452, "14.1.32.0/20": 9790}
    used = _rib(tmp_path / "wide.gz", wide, range(70))
    used.load_rib("rrc00", read_rib_columns(tmp_path / "wide.gz"))
    first = used.snapshot(T0)
    assert first.full_feed_v4 == 70 and first.visible_v4 == 512
    # the most specific prefix's origin, after the /16's
    assert dict(zip(first.v4_blocks.tolist(), first.v4_origin.tolist(), strict=True))[
        (41 << 24) + (32 << 16) + (1 << 8)] == 24_863
    fresh = _rib(tmp_path / "narrow.gz", narrow, range(36))
    cols = read_rib_columns(tmp_path / "narrow.gz")
    fresh.load_rib("rrc00", cols)
    used.load_rib("rrc00", cols)  # replaces every route of rrc00's peers
    want = fresh.snapshot(T0)
    assert want.full_feed_v4 == 36 and want.visible_v4 == 21  # 1 + 4 + 16 /24s
    assert _snap(used.snapshot(T0)) == _snap(want)
    assert np.array_equal(used.snapshot(T0).v4_blocks, want.v4_blocks)  # and again
