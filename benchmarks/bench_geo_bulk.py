"""Benchmark: map millions of /24 blocks to country + AS through GeoLookup.bulk_blocks.

Run: ``.venv/bin/python benchmarks/bench_geo_bulk.py [--random N] [--sample N]``

Data: N random /24 network addresses (default 4,000,000, seed 2022) plus every KZ /24 of the
2022-01-04 snapshot, mapped as of 2022-01-05 (the Kazakhstan blackout). Peers, on the same
addresses and the same snapshot:

* ``bisect + ipaddress``: the obvious pure-Python loop (``ipaddress.IPv4Address(str)`` then
  ``bisect.bisect_right`` over Python lists of range starts), timed on a sample, extrapolated;
* ``iptocc per IP``: ``iptocc.country_code(ip)`` called once per address (current data, so it
  is a speed peer, not an accuracy one), timed on a sample, extrapolated.

Also times the bulk path in the iptocc period (``when=None``), the country table through
searchsorted alone (without the /20 directory), and checks that the bisect peer agrees with
bulk_blocks on the sample. Timings are medians of ``--repeat`` runs after a first call that
builds the directories; a shared machine makes single runs noisy.
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import ipaddress
import resource
import statistics
import time
import tracemalloc

import iptocc
import numpy as np

from netvigil.geo.lookup import GeoLookup, _format_ipv4

WHEN = dt.date(2022, 1, 5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--random", type=int, default=4_000_000)
    parser.add_argument("--sample", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    t0 = time.perf_counter()
    geo = GeoLookup.default()
    load_s = time.perf_counter() - t0

    rng = np.random.default_rng(2022)
    random_blocks = (rng.integers(0, 2**24, args.random, dtype=np.uint32) << 8).astype(np.uint32)
    kz_blocks = geo.country_blocks("KZ", WHEN)
    blocks = np.concatenate([random_blocks, kz_blocks])
    n = int(blocks.size)
    print(f"GeoLookup.default() load: {load_s * 1000:.0f} ms")
    print(f"blocks: {n:,} ({args.random:,} random + {kz_blocks.size:,} KZ /24s), as of {WHEN}")

    t0 = time.perf_counter()
    geo.bulk_blocks(blocks, WHEN)  # first call also builds the /20 directories
    first_s = time.perf_counter() - t0
    runs = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        bulk = geo.bulk_blocks(blocks, WHEN)
        runs.append(time.perf_counter() - t0)
    bulk_s = statistics.median(runs)
    tracemalloc.start()
    geo.bulk_blocks(blocks, WHEN)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    known = float((bulk.country_idx >= 0).mean())
    kz_idx = bulk.country_idx[-kz_blocks.size:]
    kz_share = float(np.mean(np.array(bulk.countries)[kz_idx] == "KZ"))
    print(f"\nbulk_blocks, snapshot period: median {bulk_s:.3f} s of {args.repeat} "
          f"(best {min(runs):.3f} s, first call {first_s:.3f} s) = {n / bulk_s / 1e6:.1f} M "
          f"blocks/s")
    print(f"  peak extra memory {peak / 2**20:.0f} MiB for {n:,} blocks; country known for "
          f"{known:.1%}; KZ blocks -> KZ {kz_share:.1%}; AS known for {(bulk.asn > 0).mean():.2%}"
          " (shipped ASN ranges cover KZ only)")

    snap_idx = geo.snapshot_dates.index(dt.date(2022, 1, 4))
    table = geo._v4_global[snap_idx]
    t0 = time.perf_counter()
    table._search(blocks)
    search_s = time.perf_counter() - t0
    print(f"  country table by searchsorted alone (no /20 directory): {search_s:.3f} s = "
          f"{n / search_s / 1e6:.1f} M blocks/s")

    t0 = time.perf_counter()
    geo.bulk_blocks(blocks, None)
    now_s = time.perf_counter() - t0
    print(f"bulk_blocks, iptocc period (when=None): {now_s:.3f} s = {n / now_s / 1e6:.2f} M "
          f"blocks/s (text formatting + one iptocc batch call)")

    # ---- peer 1: pure-Python bisect + ipaddress over the same snapshot table
    starts = table.starts.tolist()
    ends = table.ends.tolist()
    values = table.values.tolist()
    sample = blocks[: args.sample]
    ints = sample.tolist()
    texts = _format_ipv4(sample)
    t0 = time.perf_counter()
    out: list[int] = []
    for text in texts:
        key = int(ipaddress.IPv4Address(text))
        i = bisect.bisect_right(starts, key) - 1
        out.append(values[i] if i >= 0 and key <= ends[i] else -1)
    py_s = (time.perf_counter() - t0) / len(texts) * n
    agree = np.array_equal(np.array(out), bulk.country_idx[: args.sample].astype(np.int64))

    # ---- peer 2: iptocc, one call per address (from text, and from ints as we hold them)
    t0 = time.perf_counter()
    for text in texts:
        iptocc.country_code(text)
    ipt_s = (time.perf_counter() - t0) / len(texts) * n
    t0 = time.perf_counter()
    for key in ints:
        iptocc.country_code(str(ipaddress.IPv4Address(key)))
    ipt_int_s = (time.perf_counter() - t0) / len(ints) * n
    t0 = time.perf_counter()
    iptocc.country_code(texts)
    ipt_batch_s = (time.perf_counter() - t0) / len(texts) * n

    print(f"\npeers on a {len(texts):,}-address sample, extrapolated to {n:,} "
          f"(ratio = peer time / bulk_blocks median):")
    rows = [
        ("bisect + ipaddress loop (same table)", py_s, f"agrees with bulk: {agree}"),
        ("iptocc.country_code per IP, from text", ipt_s, "current data"),
        ("iptocc.country_code per IP, from uint32", ipt_int_s, "str(IPv4Address) included"),
        ("iptocc.country_code one batch, from text", ipt_batch_s, "text prepared beforehand"),
    ]
    for label, secs, note in rows:
        print(f"  {label:42s} {secs:8.2f} s = {n / secs / 1e6:6.2f} M/s   "
              f"x{secs / bulk_s:6.1f}   {note}")
    dirs = sum(t.directory().nbytes for t in (table, *[a.v4 for a in geo._asn_tables]))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\ncountry table: {len(table):,} IPv4 ranges, {table.nbytes / 2**20:.1f} MiB; "
          f"/20 directories in use: {dirs / 2**20:.0f} MiB; process max RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
