"""``GET /metrics``: Prometheus text exposition (prometheus-client), per app.

Request counts and latencies by route template (``/api/v1/signals/{entity_type}/{code}``,
never the raw path: one series per route, not per entity), the store gate's state (writer
knocks heard, requests in flight), and what the store holds (series, events, ongoing events,
the newest point) read on each scrape through the same per-request gate as every route.

Each app has its own ``CollectorRegistry`` so several apps in one process (tests) never
share counters.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from netvigil.serve.deps import StoreReader, gate_of

router = APIRouter(tags=["health"])

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]],
                    Callable[[Message], Awaitable[None]]], Awaitable[None]]

TIMING_HEADER = b"server-timing"
#: latency buckets (s): the load benchmark's goal is p99 < 100 ms, so resolve around it
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class Metrics:
    """The app's registry and instruments."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("netvigil_http_requests", "HTTP requests answered",
                                ("method", "route", "status"), registry=self.registry)
        self.latency = Histogram("netvigil_http_request_duration_seconds",
                                 "Time to answer a request", ("route",), buckets=BUCKETS,
                                 registry=self.registry)
        self.in_flight = Gauge("netvigil_http_requests_in_flight", "Requests being answered",
                               registry=self.registry)
        self.knocks = Gauge("netvigil_store_writer_knocks",
                            "Writer lock attempts heard while serve held the store",
                            registry=self.registry)
        self.store = Gauge("netvigil_store_rows", "Rows in the store by table", ("table",),
                           registry=self.registry)
        self.ongoing = Gauge("netvigil_events_ongoing", "Events without an end",
                             registry=self.registry)
        self.cache = Gauge("netvigil_http_cache_lookups",
                           "Response cache lookups since start (serve/cache.py)", ("result",),
                           registry=self.registry)
        self.snapshot = Gauge("netvigil_memory_snapshot",
                              "The in-memory snapshot (serve/memory.py): serial (0: none), "
                              "bins held, seconds its build took, seconds behind the store, "
                              "snapshots patched after writes and built whole",
                              ("field",), registry=self.registry)
        self.newest = Gauge("netvigil_store_newest_point_seconds",
                            "Unix time of the newest stored point", registry=self.registry)


class MetricsMiddleware:
    """Pure ASGI middleware (no per-request task, unlike BaseHTTPMiddleware)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        #: each (method, route, status)'s labelled latency and count: ``labels()`` takes a
        #: lock and checks its arguments on every call (two per request); the event loop's
        #: thread alone touches this dict
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = [500]

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
                # the app's own time to answer (W3C Server-Timing): what the load benchmark
                # reports beside the client's latency, which includes queueing in the loop
                took = 1e3 * (time.perf_counter() - t0)
                message = {**message, "headers": [*message.get("headers", []),
                                                  (TIMING_HEADER, b"app;dur=%.3f" % took)]}
            await send(message)

        m = self.metrics
        m.in_flight.inc()
        t0 = time.perf_counter()
        try:
            await self.app(scope, receive, send_status)
        finally:
            took = time.perf_counter() - t0
            route = scope.get("route")
            key = (scope.get("method", ""), getattr(route, "path", None) or "unmatched",
                   status[0])
            children = self._children.get(key)
            if children is None:
                children = self._children[key] = (
                    m.latency.labels(key[1]), m.requests.labels(key[0], key[1], str(key[2])))
            m.in_flight.dec()
            children[0].observe(took)
            children[1].inc()


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request, store: StoreReader) -> Response:
    m: Metrics = request.app.state.metrics
    for table, n in store.table_counts().items():
        m.store.labels(table).set(n)
    con = store.connection
    row = con.execute("SELECT count(*) FROM events WHERE end_time IS NULL").fetchone()
    m.ongoing.set(row[0] if row else 0)
    row = con.execute("SELECT max(last_time) FROM series").fetchone()
    if row and row[0] is not None:
        m.newest.set(row[0])
    m.knocks.set(gate_of(request).knocks)
    caches = (request.app.state.response_cache, request.app.state.ioda_data_cache)
    m.cache.labels("hit").set(sum(c.hits for c in caches))
    m.cache.labels("miss").set(sum(c.misses for c in caches))
    memory = request.app.state.memory
    snap = memory.current
    m.snapshot.labels("serial").set(snap.serial if snap is not None else 0)
    m.snapshot.labels("bins").set(snap.points if snap is not None else 0)
    m.snapshot.labels("build_seconds").set(snap.build_seconds if snap is not None else 0)
    stale = memory.stale_seconds()
    m.snapshot.labels("stale_seconds").set(stale)
    m.snapshot.labels("patches").set(memory.patches)
    m.snapshot.labels("builds").set(memory.builds)
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
