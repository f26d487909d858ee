"""BGP benchmarks (issue 3 item 7): parse rate and RIB → per-country visible-/24 counts,
side by side with ``bgpdump -m`` and, when installed, pybgpkit-parser 0.6.2 and mrtparse.

    benchmarks/setup_bgp_peers.sh            # bgpdump (apt), mrtparse + pybgpkit-parser (pip)
    .venv/bin/python benchmarks/bench_bgp_parse.py [--prefixes 900000] [--peers 20] [--rss-peers 60]

Inputs: the real 47-peer RouteViews RIB slice from the test fixtures (270,005 elements, bz2,
truncated tail), and a full-size synthetic RIB encoded in real MRT by
``netvigil.testing.mrt_encode.synthetic_rib`` (cached under $NETVIGIL_BENCH_CACHE,
default ~/.cache/netvigil-bench). Every figure is elements per second, median of 3 runs for the
fast tools (1 run for per-element Python peers, capped in time); ratios are against
``bgpdump -m`` printing the same file to /dev/null.

The fast path uses numba (compiled scan, nogil) and isal (ISA-L gzip) when installed; the
"pure numpy" rows run the same code with NETVIGIL_NO_NUMBA=1 NETVIGIL_NO_ISAL=1 in a fresh
process. Peak RSS is measured in a fresh process on a synthetic table with ``--rss-peers``
peers (60 by default: the issue's memory goal), which also gives a cold end-to-end time that
includes importing numba and loading its compiled cache.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from netvigil.sources.bgp.fastrib import read_rib_columns  # noqa: E402
from netvigil.sources.bgp.mrt import MrtReader  # noqa: E402
from netvigil.sources.bgp.visibility import RoutingState, VisibilityConfig  # noqa: E402
from netvigil.testing.mrt_encode import synthetic_rib  # noqa: E402

FIX = ROOT / "tests" / "fixtures" / "mrt"


def timed(fn: Callable[[], int], runs: int = 3) -> tuple[float, int]:
    times, n = [], 0
    for _ in range(runs):
        t = time.perf_counter()
        n = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), n


def sh(cmd: str) -> Callable[[], int]:
    def run() -> int:
        subprocess.run(cmd, shell=True, check=False, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        return 0
    return run


def n_columns(path: Path) -> int:
    return len(read_rib_columns(path))


def n_elems(path: Path) -> int:
    return sum(1 for _ in MrtReader(path))


def end_to_end(path: Path, ff: int) -> int:
    import numpy as np

    cols = read_rib_columns(path)
    state = RoutingState(VisibilityConfig(ff_v4=ff))
    state.load_rib("c", cols)
    n = len(cols)
    del cols
    snap = state.snapshot(0)
    loc = GEO.bulk_blocks(snap.v4_blocks, 1_700_000_000)
    ci = loc.country_idx.astype(np.int64)
    np.bincount(ci[ci >= 0], minlength=len(loc.countries))
    return n


def fresh_end_to_end(path: Path, ff: int, env: dict[str, str] | None = None
                     ) -> tuple[float, int, float]:
    """(seconds, elements, peak RSS MiB) of one end-to-end run in a fresh process."""
    code = (
        f"import resource,sys,time;sys.path.insert(0,{str(ROOT / 'benchmarks')!r});"
        "from bench_bgp_parse import end_to_end;t=time.perf_counter();"
        f"n=end_to_end(__import__('pathlib').Path({str(path)!r}),{ff});"
        "print(time.perf_counter()-t,n,resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True, env={**os.environ, **(env or {})}).stdout.split()
    return float(out[-3]), int(out[-2]), int(out[-1]) / 1024


def peak_rss_mb(path: Path, ff: int) -> float:
    return fresh_end_to_end(path, ff)[2]


def accelerators() -> str:
    parts = []
    for mod in ("numba", "isal"):
        try:
            parts.append(f"{mod} {__import__(mod).__version__}")
        except ImportError:
            parts.append(f"{mod} missing")
    return ", ".join(parts)


def pybgpkit(path: Path, cap: float) -> int:
    import pybgpkit_parser  # type: ignore[import-not-found,import-untyped,unused-ignore]

    n = 0
    t = time.perf_counter()
    for _ in pybgpkit_parser.Parser(url=str(path)):
        n += 1
        if n % 10000 == 0 and time.perf_counter() - t > cap:
            break
    return n


def mrtparse_elems(path: Path, cap: float) -> int:
    import mrtparse  # type: ignore[import-not-found,import-untyped,unused-ignore]

    n = 0
    t = time.perf_counter()
    try:
        for entry in mrtparse.Reader(str(path)):
            n += len(entry.data.get("rib_entries", ())) or 1
            if time.perf_counter() - t > cap:
                break
    except EOFError:  # the real fixture is a cut bz2 stream: count what was read
        pass
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prefixes", type=int, default=900_000)
    ap.add_argument("--peers", type=int, default=20)
    ap.add_argument("--cap", type=float, default=20.0, help="seconds per slow Python peer")
    ap.add_argument("--rss-peers", type=int, default=60,
                    help="peers of the synthetic table whose peak RSS is measured (0: skip)")
    ap.add_argument("--no-fallback", action="store_true",
                    help="skip the pure-numpy (no numba, no isal) rows")
    args = ap.parse_args()
    cache = Path(os.environ.get("NETVIGIL_BENCH_CACHE", Path.home() / ".cache/netvigil-bench"))
    cache.mkdir(parents=True, exist_ok=True)
    real_bz2 = FIX / "rib.20140523.0600_firstMB.bz2"
    real_plain = cache / "rib.20140523.0600_firstMB.mrt"
    if not real_plain.exists():
        import bz2

        d = bz2.BZ2Decompressor()
        real_plain.write_bytes(d.decompress(real_bz2.read_bytes()))
    real_gz = cache / "rib.20140523.0600_firstMB.mrt.gz"
    if not real_gz.exists():
        real_gz.write_bytes(gzip.compress(real_plain.read_bytes(), 6))
    synth = cache / f"synthetic-{args.prefixes}x{args.peers}.mrt.gz"
    if not synth.exists():
        t = time.perf_counter()
        synthetic_rib(synth, args.prefixes, args.peers)
        print(f"encoded {synth.name} in {time.perf_counter() - t:.0f}s", file=sys.stderr)
    synth_plain = cache / synth.name.removesuffix(".gz")
    if not synth_plain.exists():
        with gzip.open(synth) as src, open(synth_plain, "wb") as dst:
            shutil.copyfileobj(src, dst, 16 << 20)

    have_bgpdump = shutil.which("bgpdump") is not None
    rows: list[tuple[str, str, float, int]] = []

    def add(label: str, file: str, fn: Callable[[], int], runs: int = 3,
            n_known: int | None = None) -> None:
        secs, n = timed(fn, runs)
        rows.append((label, file, secs, n_known if n_known is not None else n))

    for name, path, plain in (("real 270k bz2", real_bz2, real_plain),
                              ("real 270k gz", real_gz, real_plain),
                              (f"synth {args.prefixes // 1000}k x{args.peers} gz", synth,
                               synth_plain)):
        n_el = len(read_rib_columns(path))
        if path.suffix == ".gz":
            add("zcat (decompress only)", name, sh(f"zcat {path} > /dev/null"), n_known=n_el)
        else:
            add("bzcat (decompress only)", name, sh(f"bzcat {path} > /dev/null"), n_known=n_el)
        if have_bgpdump:
            add("bgpdump -m > /dev/null", name, sh(f"bgpdump -m {path} > /dev/null"),
                runs=1 if n_el > 2_000_000 else 3, n_known=n_el)
        add("netvigil fast RIB columns", name, partial(n_columns, path))
        add("netvigil RIB -> country counts", name,
            partial(end_to_end, path, 400_000 if n_el > 2_000_000 else 5000),
            runs=1 if n_el > 2_000_000 else 3)
        if n_el < 1_000_000:
            add("netvigil elems (BgpElem objects)", name,
                partial(n_elems, path), runs=1)
            try:
                add("pybgpkit-parser 0.6.2", name, partial(pybgpkit, path, args.cap), runs=1)
            except ImportError:
                pass
            try:
                add("mrtparse", name, partial(mrtparse_elems, path, args.cap), runs=1)
            except ImportError:
                pass
        if not args.no_fallback:
            secs, n, _ = fresh_end_to_end(path, 400_000 if n_el > 2_000_000 else 5000,
                                          {"NETVIGIL_NO_NUMBA": "1", "NETVIGIL_NO_ISAL": "1"})
            rows.append(("RIB -> counts, pure numpy (cold)", name, secs, n))
        if name.startswith("synth"):
            add("netvigil fast RIB columns (plain)", name + " (plain)",
                partial(n_columns, plain))

    # small files take the pure-numpy path (numba's ~0.8 s per-process load would cost more);
    # now that numba is loaded (by the synthetic rows), show what the compiled path does on them
    import netvigil.sources.bgp.fastrib as fastrib

    fastrib.NUMBA_MIN_WORK = 0
    for name, path in (("real 270k bz2", real_bz2), ("real 270k gz", real_gz)):
        add("fast RIB columns (numba loaded)", name, partial(n_columns, path))
        add("RIB -> counts (numba loaded)", name, partial(end_to_end, path, 5000))

    print(f"{'tool':36s} {'input':28s} {'seconds':>9s} {'elements':>11s} {'elem/s':>11s}"
          f" {'x bgpdump':>9s}")
    base: dict[str, float] = {}
    for label, file, secs, n in rows:
        if label.startswith("bgpdump"):
            base[file] = n / secs
    for label, file, secs, n in rows:
        rate = n / secs if secs else float("inf")
        ratio = rate / base[file] if file in base else float("nan")
        print(f"{label:36s} {file:28s} {secs:9.3f} {n:11,d} {rate:11,.0f} {ratio:9.2f}")
    print(f"accelerators: {accelerators()}")
    secs, n, rss = fresh_end_to_end(synth, 400_000)
    print(f"peak RSS, RIB -> country counts, synthetic {args.prefixes}x{args.peers}: "
          f"{rss:,.0f} MiB; cold run in a fresh process {secs:.1f} s = {n / secs:,.0f} elem/s")
    if args.rss_peers:
        big = cache / f"synthetic-{args.prefixes}x{args.rss_peers}.mrt.gz"
        if not big.exists():
            t = time.perf_counter()
            tmp = big.with_suffix(".tmp")
            synthetic_rib(tmp, args.prefixes, args.rss_peers)
            tmp.rename(big)
            print(f"encoded {big.name} in {time.perf_counter() - t:.0f}s", file=sys.stderr)
        secs, n, rss = fresh_end_to_end(big, 400_000)
        print(f"peak RSS, RIB -> country counts, synthetic {args.prefixes}x{args.rss_peers} "
              f"({n:,d} elements): {rss:,.0f} MiB = {rss / 1024:.2f} GiB (goal < 4 GiB for 60 "
              f"peers); cold run {secs:.1f} s = {n / secs:,.0f} elem/s")


if __name__ == "__main__":
    from netvigil.geo import GeoLookup as _G

    GEO = _G.default()
    main()
else:
    from netvigil.geo import GeoLookup as _G

    GEO = _G.default()
