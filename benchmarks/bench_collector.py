"""What the collector's guarantees cost per upload, end to end over real sockets.

N measurements (web_connectivity, the agent's envelope, 20 countries × 24 hours × ASes)
are posted by CLIENTS threads over keep-alive HTTP/1.1 to ``netvigil serve``'s app on
127.0.0.1 (uvicorn), and the time until every cell is derived (points written, detection
run) is measured. Side by side, the named peer: **the same app and socket with a route that
parses the JSON body and answers 200** (no authentication, no validation, nothing durable) —
the floor that HTTP + JSON set. Clients and server share one process (and its GIL), as
both sides of the comparison do. Printed: uploads/s for both and their ratio, the time
from the first upload until every marked hour is derived (it includes the uploads: the
derivation runs while they arrive), and the archive's size.

    .venv/bin/python benchmarks/bench_collector.py [N] [CLIENTS]

``rounds [BLOCKS] [ROUNDS]``: what a remote round costs the collector when a local prober
writes the same store (docs/probe.md, "Local and remote vantage points"). A day of rounds
(ROUNDS per vantage point, default 144 = one day of 600 s rounds, BLOCKS /24s each) of a
local vantage point and a remote one is logged through the pipeline; then, side by side,
the named peer **one remote round that continues its chain** (folded into the checkpoint)
and two late remote rounds (sent again with other content, so the log is replayed): the
previous round (two bins rewritten) and the day's first (every bin rewritten), all uploaded
over HTTP. Printed: the times, their ratios to the peer's, the replay's rounds per second
and the round log's size per round.

    .venv/bin/python benchmarks/bench_collector.py rounds [BLOCKS] [ROUNDS]
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import Request
from netvigil_probe import measurement as pm

from netvigil.cli.common import open_store
from netvigil.serve.app import create_app
from netvigil.serve.collector import CONFIG_ENV, token_digest
from netvigil.store.duck import Store

TOKEN = "bench-token"
T0 = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp())
CCS = ["KZ", "AT", "BR", "IN", "IR", "RU", "TR", "US", "DE", "FR", "ET", "MM", "PK", "EG",
       "NG", "VE", "BY", "UA", "ID", "MX"]


def bodies(n: int) -> list[bytes]:
    out = []
    for i in range(n):
        when = datetime.fromtimestamp(T0 + 37 * i % (24 * 3600), UTC)
        keys = {"queries": [], "tcp_connect": [], "tls_handshakes": [], "requests": [],
                "blocking": "tcp_ip" if i % 3 == 0 else False, "accessible": i % 3 != 0,
                "n": i}
        m = pm.build("https://web.telegram.org/", keys, measured_at=when, test_start=when,
                     runtime=0.1, net=pm.Network(CCS[i % len(CCS)], f"AS{64500 + i % 7}"),
                     resolver_ip="198.18.0.54", rid=f"b{i}")
        out.append(json.dumps({"format": "json", "content": m,
                               "uploaded_at": "2026-12-01T00:00:00+00:00"}).encode())
    return out


def post_all(port: int, path: str, items: list[bytes], clients: int) -> float:
    chunks = [items[k::clients] for k in range(clients)]
    errors: list[str] = []

    def client(chunk: list[bytes]) -> None:
        con = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for b in chunk:
            con.request("POST", path, b, {"Content-Type": "application/json",
                                          "Authorization": f"Bearer {TOKEN}"})
            r = con.getresponse()
            r.read()
            if r.status != 200:
                errors.append(str(r.status))
        con.close()

    t = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in chunks]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    dt = time.perf_counter() - t
    assert not errors, errors[:5]
    return dt


def status(port: int) -> dict[str, Any]:
    con = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    con.request("GET", "/api/v1/collector/status", headers={"Authorization": f"Bearer {TOKEN}"})
    out: dict[str, Any] = json.loads(con.getresponse().read())
    con.close()
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    clients = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    items = bodies(n)
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "s.duckdb"
        Store(store).close()
        cfg = Path(tmp) / "c.json"
        cfg.write_text(json.dumps({"senders": {"bench": {"token_sha256": token_digest(TOKEN),
                                                         "kinds": ["measurement"]}}}))
        os.environ[CONFIG_ENV] = str(cfg)
        app = create_app(store, open_store=open_store, lock_wait=60)

        @app.post("/bench/peer")
        async def peer(request: Request) -> dict[str, str]:
            json.loads(await request.body())
            return {"ok": "yes"}

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        th = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        th.start()
        while not server.started:
            time.sleep(0.01)
        post_all(port, "/bench/peer", items[:50], clients)  # warm up both paths
        t_peer = post_all(port, "/bench/peer", items, clients)
        t0 = time.perf_counter()
        t_coll = post_all(port, "/api/v1/collector/measurements", items, clients)
        while (st := status(port))["pending_cells"]:
            time.sleep(0.05)
        t_all = time.perf_counter() - t0
        again = post_all(port, "/api/v1/collector/measurements", items[:200], clients)
        size = sum(p.stat().st_size for p in (Path(tmp) / "s.duckdb.collector").rglob("*"))
        server.should_exit = True
        th.join(30)
        print(f"{n} uploads, {clients} clients, {len(CCS)} countries x 24 hours")
        print(f"  peer (parse JSON, answer 200):      {n / t_peer:8.0f} uploads/s")
        print(f"  collector (auth, validate, durable): {n / t_coll:8.0f} uploads/s  "
              f"({t_coll / t_peer:.1f}x the peer's time)")
        print(f"  duplicates re-sent (200 of them):    {200 / again:8.0f} uploads/s")
        print(f"  first upload until all derived:      {t_all:8.2f} s  "
              f"({st['cells_derived']} (hour, country) cells derived, re-derivations "
              "included)")
        print(f"  archive: {size / n:.0f} bytes per measurement")


def _round_body(vantage: str, start: int, blocks: list[str], down: int) -> bytes:
    """A remote round as ``netvigil probe run`` writes its lines: ``down`` blocks dark."""
    lines = [{"round_start": start, "round": 0, "vantage": vantage, "block": b,
              "state": "down" if i < down else "up", "belief": 0.5,
              "probes_sent": 15 if i < down else 2, "replies": 0 if i < down else 2,
              "unreachable": 0, "lost": 15 if i < down else 0,
              "rtt_ms_median": None if i < down else 3.0} for i, b in enumerate(blocks)]
    return json.dumps({"format": "json", "content": {
        "vantage": vantage, "round_start": start, "round_seconds": 600, "lines": lines}}).encode()


def bench_rounds(n_blocks: int, n_rounds: int, keep_days: int | None = None) -> None:
    """A late round's replay over ``n_rounds`` of two vantage points; with ``keep_days``
    the round log is first pruned to that many days (``netvigil store prune-round-log``),
    so the replay starts from the log's base (docs/probe.md, "Pruning the round log")."""
    import duckdb

    from netvigil.pipeline import Pipeline
    from netvigil.pipeline.roundlog import prune_log
    from netvigil.sources.probing.signals import facts_from_lines
    from netvigil.sources.probing.targets import load_targets_csv

    blocks = [f"10.{i // 256}.{i % 256}.0/24" for i in range(n_blocks)]
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "s.duckdb"
        targets = Path(tmp) / "targets.csv"
        targets.write_text("block,addresses,availability,entity\n" + "".join(
            f"{b},{' '.join(b[:-4] + str(h) for h in range(1, 21))},0.8,country/KZ\n"
            for b in blocks))
        cfg = Path(tmp) / "c.json"
        cfg.write_text(json.dumps({"senders": {"vp-a": {"token_sha256": token_digest(TOKEN),
                                                        "kinds": ["round"]}},
                                   "targets": "targets.csv", "round_seconds": 600}))
        os.environ[CONFIG_ENV] = str(cfg)
        # a day of local and remote rounds, logged through the pipeline (local: its own
        # vantage point; remote: what the collector would have folded)
        tl = load_targets_csv(targets).targets
        from netvigil.serve.collector import validate_round

        s = Store(store)
        pipe = Pipeline(s)
        for k in range(n_rounds):
            for v in ("local", "vp-a"):
                body = json.loads(_round_body(v, T0 + 600 * k, blocks, k % 7))["content"]
                for f in facts_from_lines(validate_round(body, v), tl, 600):
                    pipe.emit(f)
        pipe.flush()
        pruned = None
        if keep_days is not None:
            t0 = time.perf_counter()
            pruned = prune_log(s, keep_days * 86_400)
            print(f"pruned to {keep_days} day(s) in {time.perf_counter() - t0:.2f} s: "
                  f"{pruned.folded} rounds folded into the base, {pruned.kept} kept, log "
                  f"{pruned.bytes_before:,} -> {pruned.bytes_after:,} bytes")
        s.close()
        con = duckdb.connect(str(store), read_only=True)
        logged = con.execute(  # the round log's own rows (state keys, pipeline.roundlog)
            "SELECT count(*), sum(length(value)) FROM state "
            "WHERE key LIKE 'pipeline:probing:log:%' OR key LIKE 'pipeline:probing:targets:%'"
        ).fetchone()
        con.close()
        assert logged is not None
        app = create_app(store, open_store=open_store, lock_wait=60, memory_points=0)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        th = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        th.start()
        while not server.started:
            time.sleep(0.01)
        in_log = pruned.kept if pruned is not None else 2 * n_rounds
        url = "/api/v1/collector/rounds"
        # warm-up (first request: targets, geo tables, the first detection of every series)
        post_all(port, url, [_round_body("vp-a", T0 + 600 * n_rounds, blocks, 1)], 1)
        t_next = post_all(port, url, [_round_body("vp-a", T0 + 600 * (n_rounds + 1), blocks,
                                                  2)], 1)
        # a retry of the previous round with other content: the log replayed, 2 bins written
        t_recent = post_all(port, url, [_round_body("vp-a", T0 + 600 * n_rounds, blocks, 4)],
                            1)
        # the day's first round again: the log replayed, every bin of the day written
        t_late = post_all(port, url, [_round_body("vp-a", T0, blocks, 3)], 1)
        server.should_exit = True
        th.join(30)
        print(f"rounds: {n_blocks} blocks, {n_rounds} rounds x 2 vantage points logged "
              f"(local + remote); load average {os.getloadavg()[0]:.1f}")
        print(f"  peer (a round continuing its chain): {t_next:8.2f} s")
        print(f"  late by one round (log replayed):    {t_recent:8.2f} s  "
              f"({t_recent / t_next:.1f}x the peer's; {in_log} logged rounds refolded)")
        if pruned is not None and pruned.before is not None and T0 < pruned.before:
            print(f"  the first round again:               {t_late:8.2f} s  (older than "
                  "the log's base: archived, not folded)")
        else:
            print(f"  late by {n_rounds} rounds (log replayed):  {t_late:8.2f} s  "
                  f"({t_late / t_next:.1f}x the peer's; {2 * n_rounds + 2} rounds, "
                  f"{(2 * n_rounds + 2) / t_late:.0f} rounds/s)")
        print(f"  round log: {int(logged[1]):,} bytes for {in_log} rounds "
              f"({int(logged[1]) / in_log:.0f} a round; {int(logged[0])} state rows)")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "rounds":
        bench_rounds(int(sys.argv[2]) if len(sys.argv) > 2 else 1000,
                     int(sys.argv[3]) if len(sys.argv) > 3 else 144,
                     int(sys.argv[4]) if len(sys.argv) > 4 else None)
    else:
        main()
