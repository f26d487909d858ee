"""Benchmark: can one process keep IODA's pace? Full prober rounds at 7k probes/s, no packets.

Run: ``.venv/bin/python benchmarks/bench_probing_scale.py [--blocks 200000] [--round 30]``

IODA probes 4.2M /24s every 600 s, i.e. ~7,000 periodic probes/s. This runs the real
:class:`Prober` (slices, stable offsets, token bucket, reply matching, Bayes updates,
adaptive and recovery probes, round close) over ``--blocks`` synthetic blocks with the
round shortened in proportion (default 200k blocks per 30 s = the same 6,700 blocks/s), with
a **fake raw socket** that answers in-process (5 % of blocks silent, to exercise adaptive
probing). No packet leaves the process. Prints probes/s, CPU share of one core, backlog at
each round close, and peak RSS. Kernel send/receive costs are measured separately by
``bench_probing_rate.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import socket
import struct
import time

import numpy as np

from netvigil.sources.probing.prober import Prober, ProberConfig, RoundResult
from netvigil.sources.probing.targets import synthetic


class AnsweringSocket:
    """Stands in for a raw socket: echo replies for every address except silent blocks."""

    def __init__(self, silent: set[int]) -> None:
        self.ours, self.kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.kernel.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
        self.ours.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.silent = silent
        self.header = struct.Struct("!BBHHHBBH4s4s")

    def fileno(self) -> int:
        return self.ours.fileno()

    def setblocking(self, flag: bool) -> None:
        self.ours.setblocking(flag)

    def recv(self, n: int) -> bytes:
        return self.ours.recv(n)

    def sendto(self, packet: bytes, dest: tuple[str, int]) -> int:
        src = socket.inet_aton(dest[0])
        if int.from_bytes(src, "big") >> 8 in self.silent:
            return len(packet)
        body = b"\x00\x00" + packet[2:]
        self.kernel.send(self.header.pack(0x45, 0, 20 + len(body), 0, 0, 64, 1, 0, src,
                                          b"\x0a\x00\x00\x01") + body)
        return len(packet)

    def close(self) -> None:
        self.ours.close()
        self.kernel.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=200_000)
    ap.add_argument("--round", type=float, default=30.0)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    targets = synthetic(args.blocks, hosts_per_block=20, seed=3)
    rng = np.random.default_rng(3)
    silent_idx = rng.choice(len(targets), size=len(targets) // 20, replace=False)
    silent = set((targets.block_starts[silent_idx] >> np.uint32(8)).tolist())
    sock = AnsweringSocket(silent)
    cfg = ProberConfig(round_seconds=args.round, slices=60, timeout=1.0, rate=50_000,
                       vantage="bench")
    prober = Prober(targets, cfg, sock=sock)  # type: ignore[arg-type]
    marks: list[tuple[float, float]] = [(time.perf_counter(), time.process_time())]

    def on_round(r: RoundResult) -> None:
        now = (time.perf_counter(), time.process_time())
        wall, cpu = now[0] - marks[-1][0], now[1] - marks[-1][1]
        marks.append(now)
        up = int((r.states == 1).sum())
        down = int((r.states == 0).sum())
        print(f"  round {r.index}: {int(r.sent.sum()):,} probes in {wall:.1f} s "
              f"({int(r.sent.sum()) / wall:,.0f}/s), CPU {cpu / wall:.0%} of one core, "
              f"up {up:,} down {down:,}, backlog at close {r.backlog:,}")

    print(f"{len(targets):,} blocks per {args.round:g} s round "
          f"(= {len(targets) / args.round * 600 / 1e6:.1f}M blocks per 600 s), "
          f"{len(silent):,} silent")
    asyncio.run(prober.run(args.rounds, on_round))
    sock.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
