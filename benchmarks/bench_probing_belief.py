"""Benchmark: Trinocular belief updates for millions of /24 blocks, and memory per block.

Run: ``.venv/bin/python benchmarks/bench_probing_belief.py [--blocks 5000000] [--repeat 5]``

Target (issue 4): one round of 5 million blocks updated in under 1 s on one core. Times, as
medians of ``--repeat`` runs on random data (seed 4):

* ``update``: one probe outcome per block (90% positive), Bayes + clamp (float32);
* ``round``: update + classify + trinarkular's "probe again?" rule + probes_to_resolve —
  everything the prober decides per block per round;
* ``update_counts``: fold per-round (sent, replies) counts in log-odds form (replays);
* ``update_sequence``: 15 probe columns applied in order (the worst case of a round).

Memory: bytes per block of a target list (|E(b)| = 30 host octets) and of the prober's
per-block state, measured with tracemalloc on 1 million blocks.
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc
from collections.abc import Callable

import numpy as np

from netvigil.sources.probing import belief as bm
from netvigil.sources.probing.prober import Prober, ProberConfig
from netvigil.sources.probing.targets import synthetic


def timed(fn: Callable[[], object], repeat: int) -> float:
    fn()
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=5_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    n = args.blocks
    rng = np.random.default_rng(4)
    b = bm.initial_beliefs(n)
    a = rng.uniform(0.1, 0.95, n).astype(np.float32)
    pos = rng.random(n) < 0.9
    sent = rng.integers(1, 16, n)
    rep = np.minimum(sent, rng.integers(0, 16, n))
    seq = np.where(rng.random((n // 10, 15)) < 0.8, 1, 0).astype(np.int8)

    def one_round() -> None:
        b1 = bm.update(b, pos, a)
        bm.classify(b1)
        more = bm.wants_more(b, b1)
        bm.probes_to_resolve(b1[more], a[more])

    print(f"belief updates, {n:,} blocks, median of {args.repeat} (one core, numpy "
          f"{np.__version__})")
    for name, fn, scale in (
        ("update (1 probe/block)", lambda: bm.update(b, pos, a), 1),
        ("round (update+classify+decide)", one_round, 1),
        ("update_counts (log-odds)", lambda: bm.update_counts(b, rep, sent, a), 1),
        ("update_sequence 15 probes", lambda: bm.update_sequence(b[: n // 10], seq,
                                                                  a[: n // 10]), 10),
    ):
        sec = timed(fn, args.repeat) * scale
        print(f"  {name:34s} {sec:7.3f} s per round  {n / sec / 1e6:7.1f} M blocks/s"
              + ("  (timed on n/10, scaled)" if scale != 1 else ""))

    m = 1_000_000
    tracemalloc.start()
    t = synthetic(m, hosts_per_block=30)
    t_bytes = tracemalloc.get_traced_memory()[0]
    p = Prober(t, ProberConfig(round_seconds=600, vantage="bench"))
    p_bytes = tracemalloc.get_traced_memory()[0] - t_bytes
    tracemalloc.stop()
    del p
    print(f"memory per million blocks: targets {t_bytes / 2**20:6.1f} MiB "
          f"({t_bytes / m:.0f} B/block, |E(b)| = 30), prober state {p_bytes / 2**20:6.1f} MiB "
          f"({p_bytes / m:.0f} B/block); 4M blocks ≈ {(t_bytes + p_bytes) * 4 / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
