"""Benchmark: one probing round through the pipeline's aggregator at IODA scale.

Run: ``.venv/bin/python benchmarks/bench_probing_pipeline.py [--blocks 4200000] [--rounds 4]``

IODA probes ~4.2M /24s per 600 s round (anchors §2.1). One :class:`ProbeRound` of that many
blocks (random routed-looking /24s, replies drawn at A = 0.7, 2 % of blocks unprobed) goes
through :class:`netvigil.pipeline.probing.ProbingAggregator` with the shipped geo tables and
BGP origins for every block (:class:`RouteOrigins`, 60k distinct ASes). Printed, medians:

* ``first round``: beliefs + states + attribution (country, AS; no region mmdb) + points;
* ``next rounds``: the same with the attribution cached (the usual case);
* peer, side by side: ``belief.update_counts`` + ``classify`` alone on the same arrays — the
  least any Trinocular aggregation of those counts must do; the ratio is the pipeline's
  overhead for attribution, sums and point batches.

No store write is timed (the store has its own benchmark).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from netvigil.geo.lookup import GeoLookup
from netvigil.geo.refdata import load_shipped_kz_asn, load_shipped_snapshots
from netvigil.model.facts import ProbeRound
from netvigil.pipeline.entities import RouteOrigins
from netvigil.pipeline.probing import ProbingAggregator, ProbingOptions
from netvigil.sources.probing import belief as bm


def make_round(blocks: np.ndarray, rng: np.random.Generator, t: float) -> ProbeRound:
    n = blocks.size
    sent = np.where(rng.random(n) < 0.02, 0, 1 + (rng.random(n) < 0.1) * 4).astype(np.uint8)
    replies = rng.binomial(sent, 0.7).astype(np.uint8)
    return ProbeRound("bench", t, 600, blocks, np.full(n, 0.7, np.float32), sent, replies,
                      np.zeros(n, np.uint8), sent - replies)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--blocks", type=int, default=4_200_000)
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    rng = np.random.default_rng(7)
    slots = np.unique(rng.integers(1 << 16, 224 << 16, args.blocks * 11 // 10))[: args.blocks]
    blocks = (slots.astype(np.uint32) << np.uint32(8))
    origins = RouteOrigins()
    origins.update(blocks, rng.integers(1, 60_000, blocks.size).astype(np.uint32))
    # countries and ASes only: region lookups have their own benchmark (bench_geo_bulk.py)
    geo = GeoLookup(load_shipped_snapshots(), [load_shipped_kz_asn()])
    agg = ProbingAggregator(geo, ProbingOptions(block_series=False), origins)
    t0 = 1_700_000_000.0
    facts = [make_round(blocks, rng, t0 + 600 * i) for i in range(args.rounds + 1)]
    t = time.perf_counter()
    first = agg.points(facts[0])
    t_first = time.perf_counter() - t
    nexts = []
    for f in facts[1:]:
        t = time.perf_counter()
        agg.points(f)
        nexts.append(time.perf_counter() - t)
    b = bm.initial_beliefs(blocks.size)
    peer = []
    for f in facts[1:]:
        t = time.perf_counter()
        b = bm.update_counts(b, f.replies, f.sent, f.availability)
        bm.classify(b)
        peer.append(time.perf_counter() - t)
    med, pmed = statistics.median(nexts), statistics.median(peer)
    points = sum(len(x) for x in first)
    print(f"blocks {blocks.size:,}  entities stored {points // 2:,}  points/round {points:,}")
    print(f"first round (attribution)   {t_first:7.3f} s")
    print(f"next rounds (median of {len(nexts)})   {med:7.3f} s   "
          f"{blocks.size / med / 1e6:5.1f} M blocks/s")
    print(f"peer: update_counts+classify {pmed:7.3f} s   ratio pipeline/peer {med / pmed:5.1f}x")
    print(f"share of a 600 s round: {100 * med / 600:.2f} %")


if __name__ == "__main__":
    main()
