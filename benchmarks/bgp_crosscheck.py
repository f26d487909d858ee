"""Cross-checks for the BGP fast paths (issue 3): run after touching fastrib.py/visibility.py.

    .venv/bin/python benchmarks/bgp_crosscheck.py

1. ``read_rib_columns`` (compiled scan) against the careful numpy reader on every MRT fixture
   in tests/fixtures/mrt and ../shared/data/mrt, under both error policies: the same rows (as a
   multiset: the compiled scan keeps file order, the numpy walk a chunk's entry-major order),
   the same ReadStats and problem offsets, or the same exception.
2. ``RoutingState.snapshot`` with numba against the pure-numpy path (NETVIGIL_NO_NUMBA=1, in a
   child process) on real and synthetic RIBs, after updates, a dropped peer, and with three
   collectors (> 64 full-feed peers: several bitmap words).
Exit status 1 on any difference.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("NETVIGIL_NUMBA_MIN_WORK", "0")  # fixtures are small: force compiled

import numpy as np  # noqa: E402

from netvigil.sources.bgp import fastrib  # noqa: E402
from netvigil.sources.bgp.mrt import MrtReader  # noqa: E402
from netvigil.sources.bgp.mrt.errors import ErrorPolicy  # noqa: E402
from netvigil.sources.bgp.visibility import RoutingState, Snapshot, VisibilityConfig  # noqa: E402

FIX = ROOT / "tests" / "fixtures" / "mrt"
SHARED = ROOT.parent / "shared" / "data" / "mrt"
COLS = ("peer", "afi", "net", "plen", "origin")


def _rows(c: fastrib.RibColumns) -> list[np.ndarray]:
    order = np.lexsort([getattr(c, k) for k in COLS])
    return [getattr(c, k)[order] for k in COLS]


def check_reader() -> int:
    files = sorted({p for d in (FIX, SHARED) if d.exists() for p in d.rglob("*")
                    if p.is_file() and p.suffix not in (".json", ".txt", ".md", ".py")})
    bad = 0
    for f in files:
        for pol in ErrorPolicy:
            def run(fn: object, f: Path = f, pol: ErrorPolicy = pol) -> object:
                try:
                    return fn(f, pol)  # type: ignore[operator]
                except Exception as exc:  # noqa: BLE001 - compared as text
                    return repr(exc)
            a, b = run(fastrib._read_careful), run(fastrib.read_rib_columns)
            if isinstance(a, str) or isinstance(b, str):
                same = a == b
            else:
                assert isinstance(a, fastrib.RibColumns) and isinstance(b, fastrib.RibColumns)
                same = (all(x.dtype == y.dtype and np.array_equal(x, y)
                            for x, y in zip(_rows(a), _rows(b), strict=True))
                        and a.stats == b.stats and a.peer_ips == b.peer_ips
                        and a.peer_asns == b.peer_asns and a.timestamp == b.timestamp
                        and a.collector_id == b.collector_id)
            if not same:
                bad += 1
                print(f"reader MISMATCH {f} {pol}", file=sys.stderr)
    print(f"reader: {len(files)} files x 2 policies, {bad} differences")
    return bad


def _digest(s: Snapshot) -> list[object]:
    return [s.full_feed_v4, s.full_feed_v6, s.visible_v4, s.visible_v6,
            hashlib.sha256(s.v4_blocks.tobytes()).hexdigest(),
            hashlib.sha256(s.v4_origin.tobytes()).hexdigest(), sorted(s.v6_by_origin.items())]


def snapshots() -> list[list[object]]:
    out: list[list[object]] = []
    rib = FIX / "rib.20140523.0600_firstMB.bz2"
    upd = FIX / "updates.20100722.2015.gz"
    for path, ff4, ff6 in ((rib, 5000, 10), (FIX / "bview.ipv6_unicast_add_path.gz", 0, 0),
                           (FIX / "bview.ipv4_unicast_add_path.gz", 0, 0)):
        cols = fastrib.read_rib_columns(path)
        for frac in (0.5, 0.2):
            st = RoutingState(VisibilityConfig(ff_v4=ff4, ff_v6=ff6, fraction=frac))
            st.load_rib("c", cols)
            out.append(_digest(st.snapshot(0)))
            for e in itertools.islice(MrtReader(path), 3000):
                st.apply("c", e)
                if e.nlri is not None and e.nlri.plen % 3 == 0:
                    st.apply("c", replace(e, kind="W"))
            if upd.exists():
                for e in itertools.islice(MrtReader(upd), 20000):
                    st.apply("c", e)
            out.append(_digest(st.snapshot(1)))
            st.drop_peer(0)
            st.drop_peer(3)
            out.append(_digest(st.snapshot(2)))
            for coll in ("d", "e", "c"):  # three collectors: > 64 full-feed peers
                st.load_rib(coll, cols)
                assert bool(np.all(st._key[1:] > st._key[:-1])), "state keys not sorted"
                out.append(_digest(st.snapshot(3)))
    return out


def check_visibility() -> int:
    here = snapshots()
    child = subprocess.run(
        [sys.executable, __file__, "--snapshots"], capture_output=True, text=True, check=True,
        env={**os.environ, "NETVIGIL_NO_NUMBA": "1", "NETVIGIL_NO_ISAL": "1"})
    there = json.loads(child.stdout)
    bad = sum(1 for a, b in zip(json.loads(json.dumps(here)), there, strict=True) if a != b)
    print(f"visibility: {len(here)} snapshots, numba vs pure numpy, {bad} differences")
    return bad


if __name__ == "__main__":
    if sys.argv[1:] == ["--snapshots"]:
        print(json.dumps(snapshots()))
        sys.exit(0)
    sys.exit(1 if check_reader() + check_visibility() else 0)
