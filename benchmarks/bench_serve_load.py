"""``netvigil serve`` under load: 100 concurrent HTTP clients on loopback (issue 10, item 6).

One command (sets up its store when missing, ~3 min on 2 quiet cores; then ~4 min: the four
query kinds under one and two server processes, and a closing table)::

    .venv/bin/python benchmarks/bench_serve_load.py

Options: ``[--days 30] [--clients 100] [--seconds 10] [--workers 1,2]
[--kinds signals,events,ioda-signals,ioda-events] [--write-every S] [--no-memory]
[--store PATH] [--fresh] [--no-compact] [--load-generator wrk|httpx] [--series-scale 0.1]``.

1. **Store.** Default ``$TMPDIR/netvigil-bench-serve/load-30d.duckdb``, reused when present
   (opened read-write once so the current code's migrations apply), else loaded under a
   temporary name and renamed when complete: 30 days of 5-minute ``bgp`` series for every
   country and every ISO 3166-2 region (pycountry: 249 + ~5,000 series, 8,640 points each,
   ~45.7M rows) written through ``Store.write_points`` one day per call, time-major (one
   bin of every series after another, the order the pipeline writes in), and 3 events per
   country through ``Store.replace_events``; then the store's maintenance step
   ``Store.compact_points`` (``netvigil store compact``; ``--no-compact`` keeps the
   time-ordered layout). Values synthetic, nothing downloaded.
2. **Serve** in its own process: ``netvigil serve --store ... --port ... --workers N``
   (uvicorn), one run per ``--workers`` count; the load starts once every worker answers
   from its in-memory snapshot (serve/memory.py; ``--no-memory``: every chart reads
   DuckDB, the code before it).
3. **Load generator** in a second process: ``--clients`` closed-loop clients, one
   keep-alive connection each, no think time, for ``--seconds`` per query kind: Debian's
   ``wrk`` (C; a Lua script gives each request the next of 20,000 random paths and reads
   two response headers) by default, or this script's httpx2 AsyncClient. Kinds:

   * ``signals``: ``/api/v1/signals/{country|region}/{code}?signal=bgp`` over a random
     7-day window with ``max_points=500`` (a dashboard chart: 5,295 entities x 23 windows,
     ~122,000 distinct URLs, so nearly every request misses the answer cache);
   * ``events``: ``/api/v1/events?entity_type=country&entity_code=..&from=..&until=..``
     over the 30 days (an entity page's list; 249 distinct URLs, nearly all cache hits);
   * ``ioda-signals`` / ``ioda-events``: the same questions through ``/ioda/v2/signals/raw``
     and ``/ioda/v2/outages/events?format=codf`` (IODA's envelope).

   Printed per kind: requests and distinct URLs asked, errors (non-200, socket errors,
   timeouts past 30 s), throughput, p50 and p99 at the client, the goal (p99 < 100 ms, 0
   errors), the load average (wrk's percentiles are after its coordinated-omission
   correction, ``stats_correct``: a latency L over twice the mean cycle also counts at L minus
   each multiple of that cycle, so one long wait weighs many samples: docs/api.md "Load");
   the **server's own time** per request (its Server-Timing
   header: from the app's first line to its response start, so queueing in the kernel
   and in uvicorn's loop is excluded) p50/p99/mean; cache hits (``x-netvigil-cache``); then
   one client alone for a fifth of the time (the service time without queueing).
   ``--write-every S`` runs a writer process beside serve, as ``netvigil run`` is: every S
   seconds it opens the store read-write (the CLI's lock-aware opener) and writes one bin
   of every series; printed: its lock waits, and the snapshot serials before and after.
4. **Peer, side by side:** the same questions in-process straight on DuckDB (one read-only
   connection, one query at a time, no HTTP, no JSON): what an uncached chart cost before
   the snapshot. The ratio printed is serve alone p50 / DuckDB p50.

With closed-loop clients and no think time, latency is about clients / throughput (Little's
law), so on a 2-core machine shared with other jobs the client p99 mostly measures how
much CPU serve got; the server's own time is the figure to judge the code by.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from netvigil.serve.memory import MAX_POINTS

END = 1_767_225_600  # 2026-01-01T00:00:00Z: the end of the loaded 30 days
STEP = 300
DAY = 86_400


# ---------------------------------------------------------------------- loading
GENERATOR = "wrk"  # or "httpx" (--load-generator)
SCALE = 1.0  # share of the entities loaded and queried (--series-scale, for quick runs)


def entities() -> list[tuple[str, str]]:
    """Every country and region (pycountry), or every k-th of them at ``SCALE`` < 1."""
    import pycountry

    countries = [("country", c.alpha_2) for c in pycountry.countries]
    regions = [("region", s.code) for s in pycountry.subdivisions]
    every = max(1, round(1 / SCALE))
    return (countries + regions)[::every]


def load(path: Path, days: int, seed: int = 7, compact: bool = True) -> dict[str, float]:
    """Write ``days`` of 5-minute series for every country and region, and events."""
    from netvigil.model import (
        Entity,
        EntityRef,
        EntityType,
        Event,
        EventKind,
        EventStatus,
        Scope,
        SignalEvidence,
    )
    from netvigil.model.entities import make_ref
    from netvigil.store.duck import Compaction, Store

    ents = entities()
    refs = [make_ref(t, c) for t, c in ents]
    n = len(refs)
    rng = np.random.default_rng(seed)
    level = rng.uniform(50, 20_000, n)
    types = np.array([r.type.value for r in refs], dtype=object)
    codes = np.array([r.code for r in refs], dtype=object)
    start = END - days * DAY
    t0 = time.perf_counter()
    with Store(path) as store:
        store.upsert_entities([Entity(r, r.code, None) for r in refs
                               if r.type is EntityType.COUNTRY])
        for d in range(days):
            times = start + d * DAY + STEP * np.arange(DAY // STEP, dtype=np.int64)
            diurnal = 1.0 + 0.1 * np.sin(2 * np.pi * (times % DAY) / DAY)
            # time-major, as the pipeline writes (one 5-minute bin of every series after
            # another): the table's order before compaction is the production one
            vals = (level[:, None] * diurnal[None, :]
                    * rng.normal(1.0, 0.01, (n, times.size))).T.ravel()
            k = times.size
            store.write_points(np.tile(types, k), np.tile(codes, k),
                               np.full(n * k, "bgp", dtype=object), np.repeat(times, n), vals,
                               source="bench", step=STEP)
        t_series = time.perf_counter() - t0
        for ref in refs:
            if ref.type is not EntityType.COUNTRY:
                continue
            evs = []
            for i in range(3):
                s = int(start + rng.integers(0, days * DAY - DAY) // STEP * STEP)
                e = s + int(rng.integers(2, 48)) * STEP
                ev = SignalEvidence("bgp", "ioda.median", s, e, 1e5, 0.3, 100.0, 1000.0,
                                    "critical")
                evs.append(Event(f"{ref.code}-{i}", ref, ref.code, s, e, EventStatus.ENDED,
                                 Scope.NATIONAL, EventKind.ROUTING, 1e5, 0.6, 0.3, (ev,),
                                 ("bench",)))
            store.replace_events(EntityRef(ref.type, ref.code), evs)
        rows = store.table_counts()["points"]
        t1 = time.perf_counter()
        # the store's maintenance step (netvigil store compact); --no-compact to compare
        done = store.compact_points() if compact else Compaction(None, None, 0)
        t_compact = time.perf_counter() - t1
    return {"series": float(n), "rows": float(rows), "seconds": time.perf_counter() - t0,
            "series_seconds": t_series, "compacted": float(done.rows),
            "compact_seconds": t_compact}


# ---------------------------------------------------------------------- queries
#: query kinds and the DuckDB question each asks (the peer)
KINDS = ("signals", "events", "ioda-signals", "ioda-events")
PEER_OF = {"signals": "signals", "ioda-signals": "signals", "events": "events",
           "ioda-events": "events"}


def make_paths(kind: str, count: int, days: int, seed: int) -> list[str]:
    """``count`` random queries of ``kind``: a random entity's random 7-day chart, or a
    random country's events over the loaded days."""
    rnd = random.Random(seed)
    ents = entities()
    countries = [c for t, c in ents if t == "country"]
    out = []
    for _ in range(count):
        if PEER_OF[kind] == "signals":
            t, c = rnd.choice(ents)
            until = END - rnd.randrange(0, max(1, days - 7)) * DAY
            if kind == "signals":
                out.append(f"/api/v1/signals/{t}/{c}?signal=bgp&from={until - 7 * DAY}"
                           f"&until={until}&max_points=500")
            else:
                out.append(f"/ioda/v2/signals/raw/{t}/{c}?datasource=bgp&from="
                           f"{until - 7 * DAY}&until={until}&maxPoints=500")
        else:
            c = rnd.choice(countries)
            if kind == "events":
                out.append(f"/api/v1/events?entity_type=country&entity_code={c}"
                           f"&from={END - days * DAY}&until={END}")
            else:
                out.append(f"/ioda/v2/outages/events?entityType=country&entityCode={c}"
                           f"&from={END - days * DAY}&until={END}&format=codf")
    return out


async def _client(http: Any, paths: list[str], stop_at: float, out: dict[str, Any]
                  ) -> None:
    import httpx2 as httpx

    i = 0
    while time.perf_counter() < stop_at:
        path = paths[i % len(paths)]
        i += 1
        t = time.perf_counter()
        try:
            r = await http.get(path)
            await r.aread()
            if r.status_code != 200:
                out["errors"].append(f"{r.status_code} {path}")
            timing = r.headers.get("server-timing", "")
            if "dur=" in timing:
                out["svc"].append(float(timing.split("dur=", 1)[1]))
            out["hits"] += r.headers.get("x-netvigil-cache") == "hit"
            out["paths"].add(path)
        except httpx.HTTPError as exc:
            out["errors"].append(f"{type(exc).__name__} {path}")
        out["lat"].append(time.perf_counter() - t)


def _q(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p))]


async def _generate(base: str, kind: str, clients: int, seconds: float, days: int
                    ) -> dict[str, object]:
    out: dict[str, Any] = {"lat": [], "errors": [], "svc": [], "hits": 0, "paths": set()}
    stop_at = time.perf_counter() + seconds
    t0 = time.perf_counter()
    import httpx2 as httpx

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as http:
        await asyncio.gather(*(_client(http, make_paths(kind, 200, days, seed=k), stop_at,
                                       out) for k in range(clients)))
    wall = time.perf_counter() - t0
    lat, svc = sorted(out["lat"]), sorted(out["svc"])
    return {"kind": kind, "requests": len(lat), "errors": len(out["errors"]),
            "first_errors": out["errors"][:3], "throughput": len(lat) / wall,
            "p50_ms": 1e3 * _q(lat, 0.5), "p99_ms": 1e3 * _q(lat, 0.99),
            "svc_p50_ms": _q(svc, 0.5), "svc_p99_ms": _q(svc, 0.99),
            "svc_mean_ms": statistics.fmean(svc) if svc else float("nan"),
            "hits": out["hits"], "answered": len(lat), "distinct": len(out["paths"])}


def generator_main(base: str, kind: str, clients: int, seconds: float, days: int) -> None:
    """The load generator process: prints one JSON line of results."""
    print(json.dumps(asyncio.run(_generate(base, kind, clients, seconds, days))))


# ---------------------------------------------------------------------- writer
def writer_main(path: Path, every: float, seconds: float) -> None:
    """A writer beside serve, as ``netvigil run`` is: every ``every`` s, open the store
    read-write through the CLI's lock-aware opener, write one 5-minute bin of every series
    (at ``END``, new values each time), close it. Prints one JSON line: each write's wait
    for the lock and its duration."""
    from netvigil.cli.common import open_store
    from netvigil.model.entities import make_ref

    refs = [make_ref(t, c) for t, c in entities()]
    types = np.array([r.type.value for r in refs], dtype=object)
    codes = np.array([r.code for r in refs], dtype=object)
    rng = np.random.default_rng(11)
    waits, writes = [], []
    stop_at = time.monotonic() + seconds
    while time.monotonic() + every < stop_at:
        time.sleep(every)
        t0 = time.perf_counter()
        with open_store(path, wait=60) as store:
            t1 = time.perf_counter()
            store.write_points(types, codes, np.full(len(refs), "bgp", dtype=object),
                               np.full(len(refs), END, dtype=np.int64),
                               rng.uniform(50, 20_000, len(refs)), source="bench-writer",
                               step=STEP)
        waits.append(t1 - t0)
        writes.append(time.perf_counter() - t1)
    print(json.dumps({"writes": len(writes), "wait_max_s": max(waits, default=0.0),
                      "wait_p50_s": statistics.median(waits) if waits else 0.0,
                      "write_max_s": max(writes, default=0.0)}))


# ---------------------------------------------------------------------- peer
def peer_p50(path: Path, kind: str, days: int, n: int = 200) -> float:
    """The same questions straight on DuckDB, one read-only connection, sequentially."""
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    times = []
    rnd = random.Random(1)
    ents = entities()
    for _ in range(n):
        t, c = rnd.choice(ents)
        until = END - rnd.randrange(0, max(1, days - 7)) * DAY
        t0 = time.perf_counter()
        if kind == "signals":
            con.execute("SELECT time, value FROM points WHERE entity_type = ? AND"
                        " entity_code = ? AND signal = 'bgp' AND time >= ? AND time < ?"
                        " ORDER BY time", [t, c, until - 7 * DAY, until]).fetchnumpy()
        else:
            con.execute("SELECT * FROM events WHERE entity_type = 'country' AND"
                        " entity_code = ? AND start_time < ? AND (end_time IS NULL OR"
                        " end_time > ?) ORDER BY start_time", [c, END, END - days * DAY]
                        ).fetchall()
        times.append(time.perf_counter() - t0)
    con.close()
    return 1e3 * statistics.median(times)


# ---------------------------------------------------------------------- main
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    import httpx2 as httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"netvigil serve exited with {proc.returncode}")
        try:
            if httpx.get(base + "/health", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit("netvigil serve did not become ready")


#: wrk's Lua hooks: each request takes the next path of the list (one list per thread);
#: response() keeps the server's own time (Server-Timing ``app;dur=`` in ms, serve's
#: metrics middleware) and counts answers from serve's cache (``x-netvigil-cache: hit``);
#: done() prints one JSON line (latency percentiles in microseconds, errors by kind).
WRK_SCRIPT = """
local paths = {}
for line in io.lines(os.getenv("NETVIGIL_BENCH_PATHS")) do paths[#paths + 1] = line end
local threads = {}
function setup(thread) threads[#threads + 1] = thread end
function init(args) svc = {}; hits = 0; answered = 0 end
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1])
end
response = function(status, headers, body)
  answered = answered + 1
  local t = headers["server-timing"]
  if t then svc[#svc + 1] = tonumber(string.match(t, "dur=([0-9.]+)")) end
  if headers["x-netvigil-cache"] == "hit" then hits = hits + 1 end
end
done = function(summary, latency, requests)
  local all, h, n = {}, 0, 0
  for _, t in ipairs(threads) do
    for _, v in ipairs(t:get("svc")) do all[#all + 1] = v end
    h = h + t:get("hits"); n = n + t:get("answered")
  end
  table.sort(all)
  local function q(p) if #all == 0 then return -1 end
    return all[math.max(1, math.ceil(#all * p))] end
  local sum = 0
  for _, v in ipairs(all) do sum = sum + v end
  local e = summary.errors
  io.write(string.format('{"requests": %d, "errors": %d, "micros": %d, "p50_us": %d, ' ..
    '"p99_us": %d, "svc_p50_ms": %.3f, "svc_p99_ms": %.3f, "svc_mean_ms": %.3f, ' ..
    '"hits": %d, "answered": %d}\\n', summary.requests,
    e.connect + e.read + e.write + e.status + e.timeout, summary.duration,
    latency:percentile(50), latency:percentile(99), q(0.5), q(0.99),
    #all > 0 and sum / #all or -1, h, n))
end
"""


def _run_wrk(base: str, kind: str, clients: int, seconds: float, days: int
             ) -> dict[str, Any]:
    """wrk (C, one thread, ``clients`` keep-alive connections, closed loop) in a second
    process over the same query mix; non-2xx answers, socket errors and timeouts (30 s)
    count as errors."""
    with tempfile.TemporaryDirectory() as tmp:
        paths, script = Path(tmp) / "paths.txt", Path(tmp) / "bench.lua"
        # 200 queries per client, at least 20,000: one client alone mostly misses the cache
        count = max(20_000, 200 * clients)
        all_paths = make_paths(kind, count, days, seed=clients)
        paths.write_text("\n".join(all_paths))
        script.write_text(WRK_SCRIPT)
        out = subprocess.run(["wrk", "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s",
                              "--timeout", "30s", "-s", str(script), base],
                             capture_output=True, text=True, check=True,
                             env={**os.environ, "NETVIGIL_BENCH_PATHS": str(paths)})
    raw = json.loads([ln for ln in out.stdout.splitlines() if ln.startswith("{")][-1])
    distinct = len(set(all_paths[:raw["requests"]]))
    return {"kind": kind, "requests": raw["requests"], "errors": raw["errors"],
            "first_errors": [], "throughput": raw["requests"] / (raw["micros"] / 1e6),
            "p50_ms": raw["p50_us"] / 1e3, "p99_ms": raw["p99_us"] / 1e3,
            "svc_p50_ms": raw["svc_p50_ms"], "svc_p99_ms": raw["svc_p99_ms"],
            "svc_mean_ms": raw["svc_mean_ms"], "hits": raw["hits"],
            "answered": raw["answered"], "distinct": distinct}


def _run_generator(base: str, kind: str, clients: int, seconds: float, days: int
                   ) -> dict[str, Any]:
    if GENERATOR == "wrk":
        return _run_wrk(base, kind, clients, seconds, days)
    out = subprocess.run([sys.executable, __file__, "--generator", base, kind, "--clients",
                          str(clients), "--seconds", str(seconds), "--days", str(days),
                          "--series-scale", str(SCALE)],
                         capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def snapshot_state(base: str) -> dict[str, float]:
    """serve's in-memory snapshot as ``/metrics`` shows it (serial 0: none yet)."""
    import httpx2 as httpx

    out = {"serial": 0.0, "bins": 0.0, "build_seconds": 0.0, "stale_seconds": 0.0}
    for line in httpx.get(base + "/metrics", timeout=30).text.splitlines():
        if line.startswith("netvigil_memory_snapshot{"):
            field = line.split('field="', 1)[1].split('"', 1)[0]
            out[field] = float(line.rsplit(" ", 1)[1])
    return out


def wait_snapshot(base: str, workers: int, timeout: float = 240) -> dict[str, float]:
    """Wait until every worker answers from a snapshot: /metrics lands on any worker, so
    ask until ``8 * workers`` answers in a row show one."""
    deadline = time.monotonic() + timeout
    row, state = 0, snapshot_state(base)
    while row < 8 * workers:
        if time.monotonic() > deadline:
            raise SystemExit(f"no snapshot after {timeout:g} s: {state}")
        state = snapshot_state(base)
        row = row + 1 if state["serial"] > 0 else 0
        if row == 0:
            time.sleep(0.5)
    return state


def server_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by serve and its worker processes: divided
    by the requests answered, the cost per request, which CPU contention from other jobs
    changes far less than it changes latency."""
    import psutil

    total = 0.0
    main = psutil.Process(pid)
    for p in [main, *main.children(recursive=True)]:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


def connections_per_worker(pid: int, port: int) -> list[int]:
    """How many established connections each serve process holds on ``port`` (the kernel
    decides which worker accepts a connection: serve_cmd._serve_workers)."""
    import psutil

    main = psutil.Process(pid)
    counts = []
    for p in [main, *main.children(recursive=True)]:
        try:
            n = sum(1 for c in p.net_connections(kind="tcp")
                    if c.laddr and c.raddr and c.laddr.port == port
                    and c.status == psutil.CONN_ESTABLISHED)
        except psutil.NoSuchProcess:
            continue
        if n:
            counts.append(n)
    return sorted(counts, reverse=True)


def tcp_counters() -> dict[str, int]:
    """The kernel's TCP retransmissions and tail-loss probes (this network namespace): on
    loopback they mean a segment waited unacknowledged ~200 ms, i.e. the receiving side's
    kernel work was starved of CPU."""
    out: dict[str, int] = {}
    for name in ("/proc/net/snmp", "/proc/net/netstat"):
        try:
            lines = Path(name).read_text().splitlines()
        except OSError:
            continue
        for head, values in zip(lines[::2], lines[1::2], strict=False):
            keys, vals = head.split()[1:], values.split()[1:]
            for k, v in zip(keys, vals, strict=False):
                if k in ("RetransSegs", "TCPLossProbes"):
                    out[k] = int(v)
    return out


def _store_path(args: argparse.Namespace) -> Path:
    if args.store is not None:
        return Path(args.store)
    scale = f"-s{args.series_scale:g}" if args.series_scale != 1 else ""
    return (Path(tempfile.gettempdir()) / "netvigil-bench-serve"
            / f"load-{args.days}d{scale}{'' if args.compact else '-nocompact'}.duckdb")


def ensure_store(path: Path, args: argparse.Namespace) -> None:
    """Load the store unless it is there (built under a temporary name, renamed when
    complete, so an interrupted load is never reused)."""
    if path.exists() and not args.fresh:
        from netvigil.store.duck import Store

        with Store(path):  # a read-write open applies the current code's migrations
            pass
        print(f"store: {path} (reused; --fresh to load it again)")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    part.unlink(missing_ok=True)
    part.with_name(part.name + ".wal").unlink(missing_ok=True)
    info = load(part, args.days, compact=args.compact)
    part.rename(path)
    print(f"store: {path}: loaded {info['series']:,.0f} series, {info['rows']:,.0f} points "
          f"({args.days} days x 5 min) in {info['seconds']:.1f} s (series "
          f"{info['series_seconds']:.1f} s) through Store.write_points; "
          f"Store.compact_points clustered {info['compacted']:,.0f} closed points by series "
          f"in {info['compact_seconds']:.1f} s")


def run_server(path: Path, args: argparse.Namespace, workers: int) -> list[dict[str, Any]]:
    """One ``netvigil serve`` configuration under load, each query kind in turn; returns
    one row per kind for the closing table."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    exe = Path(sys.executable).with_name("netvigil")
    cmd = [str(exe), "serve", "--store", str(path), "--port", str(port), "--workers",
           str(workers), "--memory-points", str(MAX_POINTS if args.memory else 0)]
    t0 = time.perf_counter()
    server = subprocess.Popen(cmd)
    try:
        _wait_ready(base, server)
        snap = wait_snapshot(base, workers) if args.memory else {}
        ready = time.perf_counter() - t0
        memory = (f"snapshot of {snap['bins']:,.0f} bins built in {snap['build_seconds']:.1f} s"
                  if args.memory else "no snapshot (--no-memory): every chart reads DuckDB")
        print(f"\nserve --workers {workers}: ready in {ready:.1f} s ({memory}); "
              f"load generator ({GENERATOR}): {args.clients} closed-loop clients in a "
              f"second process, {args.seconds:g} s per kind; load average before "
              f"{os.getloadavg()[0]:.1f}")
        rows = []
        for kind in args.kinds.split(","):
            before = snapshot_state(base)
            cpu0, tcp0 = server_cpu(server.pid), tcp_counters()
            balance: list[list[int]] = []
            sampler = threading.Timer(args.seconds / 2, lambda into=balance: into.append(
                connections_per_worker(server.pid, port)))
            sampler.start()
            writer = (subprocess.Popen([sys.executable, __file__, "--writer", str(path),
                                        "--write-every", str(args.write_every), "--seconds",
                                        str(args.seconds), "--series-scale", str(SCALE)],
                                       stdout=subprocess.PIPE, text=True)
                      if args.write_every else None)
            res = _run_generator(base, kind, args.clients, args.seconds, args.days)
            load_during = os.getloadavg()[0]
            sampler.join()
            cpu_us = 1e6 * (server_cpu(server.pid) - cpu0) / max(1, res["requests"])
            tcp1 = tcp_counters()
            probes = {k: tcp1.get(k, 0) - tcp0.get(k, 0) for k in tcp1}
            state = snapshot_state(base)
            if writer is not None:
                wrote = json.loads(writer.communicate(timeout=120)[0].strip().splitlines()[-1])
                after = state
                wrote_line = (f"               writer beside serve (as netvigil run): "
                      f"{wrote['writes']} writes "
                      f"of one bin of every series, lock wait p50 {wrote['wait_p50_s']:.2f} s "
                      f"max {wrote['wait_max_s']:.2f} s, write max {wrote['write_max_s']:.2f} "
                      f"s; snapshot serial {before['serial']:.0f} -> {after['serial']:.0f} "
                      f"(last build {after['build_seconds']:.1f} s, now "
                      f"{after['stale_seconds']:.1f} s behind the store)")
            else:
                wrote_line = ""
            alone = _run_generator(base, kind, 1, max(3.0, args.seconds / 5), args.days)
            peer = peer_p50(path, PEER_OF[kind], args.days)
            ok = res["errors"] == 0 and res["p99_ms"] is not None and res["p99_ms"] < 100
            print(f"  {kind:<12} {res['requests']:>7} requests ({res['distinct']:,} distinct)"
                  f"  {res['errors']} errors  {res['throughput']:7.1f} req/s  "
                  f"p50 {res['p50_ms']:7.1f} ms  p99 {res['p99_ms']:7.1f} ms   goal p99<100ms,"
                  f" 0 errors: {'met' if ok else 'NOT met'}  (load average {load_during:.1f})")
            print(f"               server's own time per request (Server-Timing): p50 "
                  f"{res['svc_p50_ms']:.2f} ms, p99 {res['svc_p99_ms']:.2f} ms, mean "
                  f"{res['svc_mean_ms']:.2f} ms; answer cache: {res['hits']:,} of "
                  f"{res['answered']:,} hits ({100 * res['hits'] / max(1, res['answered']):.0f}%)")
            print(f"               server CPU per request (all serve processes): {cpu_us:.0f} "
                  f"us ({1e6 / max(cpu_us, 1e-9):,.0f} req per CPU-second); connections per "
                  f"worker mid-run {balance[0] if balance else '?'}; TCP retransmissions "
                  f"{probes.get('RetransSegs', 0)} (tail-loss probes "
                  f"{probes.get('TCPLossProbes', 0)}); snapshot serial "
                  f"{before['serial']:.0f} -> {state['serial']:.0f}")
            print(f"               one client alone: p50 {alone['p50_ms']:.2f} ms, "
                  f"{alone['throughput']:.1f} req/s ({alone['hits']} of {alone['answered']} "
                  f"from the cache); peer DuckDB direct (sequential, no HTTP) p50 "
                  f"{peer:.2f} ms; serve alone / peer = {alone['p50_ms'] / peer:.2f}x; "
                  f"Little's law: {args.clients} clients / throughput = "
                  f"{args.clients / res['throughput'] * 1e3:.0f} ms")
            if wrote_line:
                print(wrote_line)
            if res["first_errors"]:
                print(f"               first errors: {res['first_errors']}")
            rows.append({"workers": workers, "kind": kind, "ok": ok, "cpu_us": cpu_us,
                         "load": load_during, **res})
        return rows
    finally:
        server.terminate()
        server.wait(timeout=60)


def print_table(rows: list[dict[str, Any]]) -> None:
    """The goal's table: one line per (workers, kind)."""
    print("\nworkers  kind          req/s     p50 ms   p99 ms  errors  server us/req  load"
          "   goal (p99 < 100 ms, 0 errors)")
    for r in rows:
        print(f"{r['workers']:>7}  {r['kind']:<12} {r['throughput']:>7.0f}  {r['p50_ms']:>8.1f}"
              f" {r['p99_ms']:>8.1f}  {r['errors']:>6}  {r['cpu_us']:>13.0f}  {r['load']:>4.1f}"
              f"   {'met' if r['ok'] else 'NOT met'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--store", type=Path, default=None,
                    help="the store (default: $TMPDIR/netvigil-bench-serve/load-<days>d"
                         ".duckdb); loaded when missing, reused otherwise")
    ap.add_argument("--fresh", action="store_true", help="load the store again")
    ap.add_argument("--compact", action=argparse.BooleanOptionalAction, default=True,
                    help="run Store.compact_points after loading (--no-compact: the layout "
                         "before the maintenance step)")
    ap.add_argument("--memory", action=argparse.BooleanOptionalAction, default=True,
                    help="serve's in-memory snapshot (--no-memory: --memory-points 0)")
    ap.add_argument("--workers", default="1,2",
                    help="serve processes, one run per comma-separated count")
    ap.add_argument("--kinds", default=",".join(KINDS),
                    help="query kinds, comma-separated: " + ", ".join(KINDS))
    ap.add_argument("--load-generator", choices=("wrk", "httpx"), default="wrk",
                    help="wrk (C, Debian's wrk) or this script's httpx2 clients (Python)")
    ap.add_argument("--series-scale", type=float, default=1.0,
                    help="share of the countries and regions loaded (quick runs; 1 = all)")
    ap.add_argument("--write-every", type=float, default=0.0,
                    help="a writer process writes one bin of every series every this many "
                         "seconds during each kind's run (0: no writer)")
    ap.add_argument("--writer", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--generator", nargs=2, metavar=("BASE_URL", "KIND"), default=None,
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    global SCALE, GENERATOR
    SCALE, GENERATOR = args.series_scale, args.load_generator
    if args.writer:
        writer_main(args.writer, args.write_every, args.seconds)
        return
    if args.generator:
        generator_main(args.generator[0], args.generator[1], args.clients, args.seconds,
                       args.days)
        return
    unknown = set(args.kinds.split(",")) - set(KINDS)
    if unknown:
        raise SystemExit(f"unknown kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
    if GENERATOR == "wrk" and shutil.which("wrk") is None:
        raise SystemExit("bench_serve_load: wrk not found: apt-get install -y wrk (make bench "
                         "does), or --load-generator httpx")
    t0 = time.perf_counter()
    path = _store_path(args)
    ensure_store(path, args)
    rows = []
    for workers in (int(w) for w in args.workers.split(",")):
        rows += run_server(path, args, workers)
    print_table(rows)
    print(f"\nmachine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} "
          f"(cores shared with other jobs: read the server's own times and the ratios); "
          f"whole run {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
