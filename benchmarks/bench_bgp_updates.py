"""The BGP update path end to end: ``netvigil bgp ingest`` of update files beside
``bgpdump -m`` reading them, and beside NetVigil's own full decoder.

Why: the real-time ingester's limit is the update path (docs/scaling.md, section 3); since
``netvigil.sources.bgp.fastupdates`` a compiled loop reads update files into columns that
the routing state takes a bin at a time. This prints what that buys, measured as a user
runs it (a fresh process per command, wall and CPU of the child):

* ``netvigil bgp ingest --dir D`` of a RIB and N update files (the default path);
* the same with ``NETVIGIL_NO_NUMBA=1``: every record through the full decoder (one object
  per element), the path every update took before;
* the RIB alone, so the update path's own cost is (run - RIB alone) and its rate is update
  elements per second of that difference;
* ``bgpdump -m`` of the update files to /dev/null (Debian bgpdump, ``bash
  benchmarks/setup_bgp_peers.sh``): the C reference, which only prints.

Input (deterministic, cached outside the repository like ``make_full_rib.py``): one
collector, a synthetic RIB of 20,000 prefixes x 10 peers, then ``--files`` 5-minute update
files of ``--updates`` messages each (``netvigil.testing.mrt_encode``): 40 % withdrawals,
one to three IPv4 prefixes per message, every fifth message IPv6 (MP_REACH/MP_UNREACH),
10 peers with AS4 paths, a session reset per file.

    .venv/bin/python benchmarks/bench_bgp_updates.py [--files 12] [--updates 50000] [--runs 3]
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NETVIGIL = Path(sys.executable).with_name("netvigil")
T0 = 1_641_340_800  # 2022-01-05 00:00 UTC


def _cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "netvigil-bench"


def _v6_update(ts: int, peer: int, announce: bool, k: int) -> bytes:
    from netvigil.testing.mrt_encode import record

    plen = 32 + k % 17
    raw = struct.pack("!HHI", 0x2001, 0x0DB8 + k % 4096, (k * 2654435761) & 0xFFFFFFFF)
    nlri = bytes([plen]) + raw[: (plen + 7) // 8]
    if announce:
        mp = struct.pack("!HBB", 2, 1, 16) + bytes(16) + b"\0" + nlri
        path = struct.pack("!BB", 2, 3) + struct.pack("!III", 64_500 + peer, 174,
                                                       1000 + k % 50_000)
        attrs = (struct.pack("!BBB", 0x40, 1, 1) + b"\0"
                 + struct.pack("!BBB", 0x40, 2, len(path)) + path
                 + struct.pack("!BBB", 0x80, 14, len(mp)) + mp)
    else:
        mp = struct.pack("!HB", 2, 1) + nlri
        attrs = struct.pack("!BBB", 0x80, 15, len(mp)) + mp
    upd = struct.pack("!HH", 0, len(attrs)) + attrs
    msg = b"\xff" * 16 + struct.pack("!HB", 19 + len(upd), 2) + upd
    ip6 = struct.pack("!HH", 0x2001, 0x0DB8) + bytes(10) + struct.pack("!H", peer + 1)
    return record(ts, 16, 4, struct.pack("!IIHH", 64_500 + peer, 12654, 0, 2) + ip6 + ip6
                  + msg)


def build(root: Path, files: int, updates: int) -> tuple[Path, int]:
    """The archive (module docstring); returns its folder and its update elements."""
    from netvigil.testing.mrt_encode import bgp4mp_update, state_change, synthetic_rib

    d = root / f"updates-{files}x{updates}" / "rrc00"
    stamp_file = root / f"updates-{files}x{updates}.elements"  # outside the --dir folder
    if stamp_file.is_file():
        return d.parent, int(stamp_file.read_text())
    shutil.rmtree(d.parent, ignore_errors=True)
    d.mkdir(parents=True)
    synthetic_rib(d / "bview.20220105.0000.gz", n_prefixes=20_000, n_peers=10, ts=T0, seed=1)
    rng = random.Random(7)
    n = 0
    for f in range(files):
        t = T0 + 300 * f
        parts = []
        for k in range(updates):
            ts = t + k * 300 // updates
            p = rng.randrange(10)
            ip, asn = f"10.0.{p}.1", 64_500 + p
            if k == updates // 2:
                parts += [state_change(ts, ip, asn, 6, 1), state_change(ts, ip, asn, 1, 6)]
                n += 2
                continue
            if k % 5 == 0:
                parts.append(_v6_update(ts, p, rng.random() >= 0.4, rng.randrange(1 << 20)))
                n += 1
                continue
            pfx = [f"{rng.randrange(1, 223)}.{rng.randrange(256)}.{rng.randrange(256)}.0/24"
                   for _ in range(rng.choice((1, 1, 2, 3)))]
            if rng.random() < 0.4:
                parts.append(bgp4mp_update(ts, ip, asn, withdraw=pfx))
            else:
                parts.append(bgp4mp_update(ts, ip, asn, announce=pfx,
                                           as_path=[asn, 174, rng.randrange(1000, 60_000)]))
            n += len(pfx)
        stamp = time.strftime("%Y%m%d.%H%M", time.gmtime(t))
        (d / f"updates.{stamp}.gz").write_bytes(gzip.compress(b"".join(parts), 6, mtime=0))
    stamp_file.write_text(str(n))
    return d.parent, n


def _run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall, CPU) seconds of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                   check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _ingest(folder: Path, env: dict[str, str]) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        # --ff-v4: the synthetic RIB's 20,000 prefixes are its peers' full tables
        return _run([str(NETVIGIL), "bgp", "ingest", "--dir", str(folder), "--ff-v4", "10000",
                     "--store", str(Path(tmp) / "s.duckdb")], env)


def _median(xs: list[tuple[float, float]]) -> tuple[float, float]:
    w = sorted(x[0] for x in xs)
    c = sorted(x[1] for x in xs)
    return w[len(w) // 2], c[len(c) // 2]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=12)
    ap.add_argument("--updates", type=int, default=50_000)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    folder, n = build(_cache(), a.files, a.updates)
    coll = folder / "rrc00"
    upd = sorted(coll.glob("updates.*.gz"))
    size = sum(p.stat().st_size for p in upd)
    print(f"input: {len(upd)} update files ({size / 1e6:.1f} MB gzip, {n:,} update elements)"
          f" + a RIB of 200,000 routes, in {folder}")
    env = dict(os.environ)
    slow = {**env, "NETVIGIL_NO_NUMBA": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        rib_only = Path(tmp) / "rib" / "rrc00"
        rib_only.mkdir(parents=True)
        shutil.copy(coll / "bview.20220105.0000.gz", rib_only)
        runs: dict[str, list[tuple[float, float]]] = {k: [] for k in (
            "rib alone", "netvigil", "netvigil, full decoder", "bgpdump -m")}
        for _ in range(a.runs):  # alternated, so a slow minute hits every row alike
            runs["rib alone"].append(_ingest(rib_only.parent, env))
            runs["netvigil"].append(_ingest(folder, env))
            runs["netvigil, full decoder"].append(_ingest(folder, slow))
            if shutil.which("bgpdump"):
                # bgpdump reads one file per process
                runs["bgpdump -m"].append(_run(["sh", "-c", 'for f; do bgpdump -m "$f";'
                                                " done", "sh", *map(str, upd)]))
    base = _median(runs["rib alone"])
    print(f"{'command':26s} {'wall s':>7s} {'cpu s':>7s} {'update path cpu s':>18s}"
          f" {'elements/cpu-s':>15s}")
    rates = {}
    for name, xs in runs.items():
        if not xs:
            print(f"{name:26s} (bgpdump missing: bash benchmarks/setup_bgp_peers.sh)")
            continue
        wall, cpu = _median(xs)
        own = cpu if name == "bgpdump -m" else cpu - base[1]
        rate = n / own if name != "rib alone" and own > 0 else float("nan")
        rates[name] = rate
        print(f"{name:26s} {wall:7.2f} {cpu:7.2f} {own if name != 'rib alone' else 0:18.2f}"
              f" {rate:15,.0f}")
    print(f"update path: netvigil / full decoder = "
          f"{rates['netvigil'] / rates['netvigil, full decoder']:.1f}x")
    if "bgpdump -m" in rates:
        print(f"update path: netvigil / bgpdump -m = {rates['netvigil'] / rates['bgpdump -m']:.1f}x"
              " (bgpdump only prints; netvigil also keeps the routing state and writes"
              " the series)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
