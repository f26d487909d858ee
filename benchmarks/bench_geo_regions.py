"""Region lookups: the mmdb region interval table against per-address ``Reader.get``.

Prints the table build time (cache off, then from the cache) and the rate of mapping the
first 10 M /24s of the IPv4 space, beside ``maxminddb`` answering one address per call.

    .venv/bin/python benchmarks/bench_geo_regions.py
"""

from __future__ import annotations

import ipaddress
import os
import time

import numpy as np

from netvigil.geo.mmdb import RegionReader, configured_mmdb


def main() -> None:
    path = configured_mmdb()
    assert path is not None, "install the geoip extra"
    os.environ["NETVIGIL_CACHE"] = "off"
    t0 = time.perf_counter()
    RegionReader(path).table()
    print(f"region table build (cache off): {time.perf_counter() - t0:.2f} s")
    del os.environ["NETVIGIL_CACHE"]
    RegionReader(path).table()  # fill the cache
    reader = RegionReader(path)
    t0 = time.perf_counter()
    table, regions = reader.table()
    print(f"region table load (cached): {time.perf_counter() - t0:.3f} s, {len(table)} ranges, "
          f"{len(regions)} regions")
    blocks = (np.arange(10_000_000, dtype=np.uint32) + np.uint32(1 << 16)) << np.uint32(8)
    for _ in range(2):
        t0 = time.perf_counter()
        idx, _ = reader.bulk(blocks)
        dt = time.perf_counter() - t0
        print(f"10M /24s -> regions: {dt:.3f} s ({blocks.size / dt / 1e6:.1f} M/s), "
              f"{int((idx >= 0).sum())} with a region")
    sample = blocks[::1000][:10_000]
    t0 = time.perf_counter()
    for k in sample.tolist():
        reader.region(ipaddress.IPv4Address(k))
    dt = time.perf_counter() - t0
    print(f"per-address mmdb get: {sample.size / dt / 1e3:.0f} k/s "
          f"(10M would take {blocks.size / (sample.size / dt):.0f} s)")


if __name__ == "__main__":
    main()
