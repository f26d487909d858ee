"""RIS Live in one process: how many update elements per CPU second ``netvigil bgp live``
turns into per-bin visibility, beside the rate all RIS collectors send.

Why: the real-time plan (docs/scaling.md, section 3) reads RIS and RouteViews through
update files; RIS Live is the other real-time path (``sources/bgp/rislive.py``), one
websocket carrying every RIS collector. Its cost per element is JSON, the translation to
``BgpElem`` (``elems_from_data``), the per-session cursor and the routing state's
``apply``; this measures them in-process, without the network (the frames are handed to
``RisLiveClient.handle`` as the connection loop does), in two rows so the state's share
shows: translation alone, then translation plus ``LiveIngester.feed`` into a store.

Input (generated here, not from any MRT code): ``--messages`` RIS Live ``ris_message``
frames over ``--minutes`` of 2022-01-05 from 2 hosts x 10 peers: 60 % announcements of 1-3
IPv4 /24s with an AS4 path, 40 % withdrawals, every 5000th a RIS_PEER_STATE down then up.
The comparison rate is assumption A3 x A1 of docs/scaling.md (12,500 update elements/s for
all RIS + RouteViews collectors; RIS alone is part of it).

    .venv/bin/python benchmarks/bench_rislive.py [--messages 200000] [--minutes 60]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

T0 = 1_641_340_800  # 2022-01-05 00:00 UTC
ALL_COLLECTORS = 12_500  # update elements/s, docs/scaling.md A1 x A3


def frames(n: int, minutes: int, seed: int = 3) -> tuple[list[str], int]:
    """RIS Live frames (module docstring) and the update elements they carry."""
    rng = random.Random(seed)
    out = []
    elements = 0
    for i in range(n):
        host = f"rrc0{i % 2}"
        p = rng.randrange(10)
        peer, asn = f"10.{i % 2}.{p}.1", 64_500 + p
        ts = T0 + i * minutes * 60 / n
        d: dict[str, object] = {"timestamp": round(ts, 2), "peer": peer, "peer_asn": str(asn),
                                "id": f"{peer}-{i}", "host": host}
        if i % 5000 in (4998, 4999):
            d.update(type="RIS_PEER_STATE", state="down" if i % 5000 == 4998 else "up")
            elements += 1
        else:
            pfx = [f"{rng.randrange(1, 223)}.{rng.randrange(256)}.{rng.randrange(256)}.0/24"
                   for _ in range(rng.choice((1, 1, 2, 3)))]
            d["type"] = "UPDATE"
            if rng.random() < 0.4:
                d["withdrawals"] = pfx
            else:
                d.update(path=[asn, 174, rng.randrange(1000, 60_000)], origin="igp",
                         announcements=[{"next_hop": peer, "prefixes": pfx}], withdrawals=[])
            elements += len(pfx)
        out.append(json.dumps({"type": "ris_message", "data": d}))
    return out, elements


def main() -> int:
    from netvigil.geo import GeoLookup
    from netvigil.pipeline import Pipeline
    from netvigil.sources.bgp.rislive import LiveIngester, RisLiveClient
    from netvigil.sources.bgp.visibility import VisibilityConfig
    from netvigil.store.duck import Store

    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--minutes", type=int, default=60)
    a = ap.parse_args()
    lines, n = frames(a.messages, a.minutes)
    print(f"input: {len(lines):,} RIS Live frames, {n:,} update elements over {a.minutes} min")
    client = RisLiveClient()
    t0 = time.process_time()
    for line in lines:
        client.handle(line)
    translate = time.process_time() - t0
    assert client.stats.elements == n, (client.stats.elements, n)
    geo = GeoLookup.default()
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "s.duckdb") as store:
        client = RisLiveClient()
        live = LiveIngester(Pipeline(store, geo), VisibilityConfig(ff_v4=50))
        t0 = time.process_time()
        for line in lines:
            for host, e in client.handle(line):
                live.feed(host, e)
        live.flush()
        both = time.process_time() - t0
        bins = live.report.bins
    print(f"{'stage':42s} {'cpu s':>7s} {'elements/cpu-s':>15s} {'x all collectors':>17s}")
    for name, cpu in (("frames -> elements (handle)", translate),
                      ("frames -> elements -> state, bins (feed)", both)):
        print(f"{name:42s} {cpu:7.2f} {n / cpu:15,.0f} {n / cpu / ALL_COLLECTORS:16.1f}x")
    print(f"bins written: {bins}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
