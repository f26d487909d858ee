"""The ASGI app: :func:`create_app` wires the routers of :data:`ROUTER_MODULES`.

A router module exposes ``router: fastapi.APIRouter`` (its own prefix included) and reaches
the store only through :mod:`netvigil.serve.deps`. Errors leave as JSON
``{"error": {"status": <int>, "message": <str>}}`` (:mod:`netvigil.serve.errors`).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

from anyio import to_thread
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from netvigil import __version__
from netvigil.geo.entities import default_registry
from netvigil.model import EntityType
from netvigil.serve.cache import ResponseCache, ResponseCacheMiddleware, VersionedMemo
from netvigil.serve.deps import DEFAULT_REQUEST_WAIT
from netvigil.serve.errors import install_error_handlers
from netvigil.serve.fastpath import FastPaths
from netvigil.serve.gate import StoreGate, StoreOpener
from netvigil.serve.memory import MAX_POINTS, SeriesMemory
from netvigil.serve.metrics import Metrics, MetricsMiddleware
from netvigil.serve.queries import Catalogue

#: FastAPI's native OpenTelemetry hooks, off: serve exports Prometheus metrics of its own
#: (metrics.py), and with the hooks on every request first asks OpenTelemetry whether a
#: provider is configured (three provider look-ups, environment reads; ~10% of a cached
#: answer's CPU in a cProfile of the load benchmark). FastAPI versions without the option
#: have no hooks to turn off.
TELEMETRY_OFF: dict[str, Any] = ({"telemetry": {"tracing": False, "metrics": False, "logs": False}}
                                  if "telemetry" in inspect.signature(FastAPI.__init__).parameters
                                  else {})
WORKER_THREADS = 8  # requests served at once; the rest wait in the event loop (cheap)

#: Modules exposing ``router: fastapi.APIRouter``; the only list to edit to add routes.
ROUTER_MODULES: tuple[str, ...] = (
    "netvigil.serve.health",
    "netvigil.serve.metrics",
    "netvigil.serve.collector",
    "netvigil.serve.api_v1",
    "netvigil.serve.ioda_v2",
    "netvigil.serve.feeds",
    "netvigil.serve.dashboard",
)


def warm_registry() -> None:
    """Load the country and region names answers fill in (queries.complete) before the
    first snapshot: the snapshot's build ends with ``gc.freeze()`` (memory.py), and tables
    loaded by the first request after it would stay in the collected generations, ~20,000
    objects every full collection scans again (seen in a gc probe of the load benchmark).
    AS names stay lazy (~0.5 s to load; many stores hold no AS)."""
    registry = default_registry()
    for entity_type in (EntityType.COUNTRY, EntityType.REGION):
        registry.count(entity_type)


def create_app(store_path: Path, *, open_store: StoreOpener,
               lock_wait: float = DEFAULT_REQUEST_WAIT,
               worker_threads: int = WORKER_THREADS,
               memory_points: int = MAX_POINTS) -> FastAPI:
    """The NetVigil HTTP app over the store at ``store_path``.

    ``open_store`` is the CLI's lock-aware opener (``netvigil.cli.common.open_store``);
    tests pass the same. ``lock_wait`` bounds how long a request waits for a writer's lock.
    The store is never held between requests (:mod:`netvigil.serve.deps`).
    ``memory_points`` bounds the in-memory snapshot of series and events (memory.py; 0: none,
    every request reads DuckDB).
    """
    gate = StoreGate(Path(store_path), open_store, lock_wait)
    memory = SeriesMemory(gate, memory_points)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Few worker threads: DuckDB releases the GIL inside a query but every other step
        # (routing, building the answer) holds it; 40 threads (anyio's default) starve the
        # event loop under 100 clients and throughput collapses (bench_serve_load.py).
        to_thread.current_default_thread_limiter().total_tokens = worker_threads
        warm_registry()
        memory.start()  # requests read DuckDB until the first snapshot is built
        yield
        memory.stop()
        gate.close()  # stop the inotify watcher, release the file

    app = FastAPI(title="NetVigil API", version=__version__, lifespan=lifespan,
                  description="Open internet-shutdown observatory: docs/api.md.",
                  **TELEMETRY_OFF)
    app.state.store_gate = gate
    app.state.metrics = Metrics()
    app.state.catalogue = VersionedMemo(Catalogue)
    app.state.response_cache = ResponseCache()
    app.state.ioda_data_cache = ResponseCache()  # IODA's data per snapshot (ioda_v2.py)
    app.state.memory = memory
    fast = app.state.fast_paths = FastPaths()
    # inner first: the metrics middleware (outermost) counts cache hits under their route
    app.add_middleware(ResponseCacheMiddleware, cache=app.state.response_cache,
                       version=gate.version, snapshot=memory.serving, fast=fast)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    install_error_handlers(app)
    for name in ROUTER_MODULES:
        app.include_router(importlib.import_module(name).router)
    fast.bind(app.routes)
    return app


class _HeldTransport:
    """A connection's transport that can hold writes: between a response's start and its
    first body message they collect, then leave in one ``writelines`` (asyncio on Python
    3.11: the bytes joined, one ``send``; uvloop: one ``writev``). Everything else is the
    transport's own."""

    __slots__ = ("_transport", "_held")

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._held: list[bytes] | None = None

    def hold(self) -> None:
        self._held = []

    def release(self) -> None:
        held, self._held = self._held, None
        if held:
            self._transport.writelines(held)

    def write(self, data: bytes) -> None:
        if self._held is None:
            self._transport.write(data)
        else:
            self._held.append(data)

    def is_closing(self) -> bool:
        return bool(self._transport.is_closing())

    def close(self) -> None:
        self.release()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _OneWriteApp:
    """The app of one connection, its ``send`` holding the head until the first body
    message. The wrapping closure lives only in the request's coroutine: stored on
    uvicorn's request cycle it would form a reference cycle (cycle -> closure -> bound
    ``send`` -> cycle), garbage only the GC frees: 600 such cycles sat in the collected
    generations of the gc probe and young collections took 9x longer."""

    __slots__ = ("app", "held")

    def __init__(self, app: Any, held: _HeldTransport) -> None:
        self.app = app
        self.held = held

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        held = self.held

        async def send_held(message: Any) -> None:
            start = message["type"] == "http.response.start"
            if start:
                held.hold()
            try:
                await send(message)
            finally:
                if not start:
                    held.release()

        await self.app(scope, receive, send_held)


class OneWriteProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol sending each response's head with its first body chunk.

    Why: uvicorn writes the status line and headers when the app sends
    ``http.response.start`` and the body on ``http.response.body``; the loop (asyncio's or
    uvloop) sends each write at once, so every answer cost two ``send`` system calls and,
    on loopback, two wake-ups of the client (the head alone, then the body). Holding the
    head until the first body message makes it one. The head of a response whose body never
    comes leaves when the connection closes (uvicorn closes it after an app error). A
    streamed body's later chunks are written as they come."""

    _held: _HeldTransport
    _one_write_app: _OneWriteApp | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._held = _HeldTransport(transport)
        super().connection_made(cast(asyncio.Transport, self._held))

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        wrapper = self._one_write_app
        if wrapper is None or wrapper.app is not app:  # uvicorn's 503 app, or the first
            wrapper = self._one_write_app = _OneWriteApp(app, self._held)
        super()._start_asgi_task(cycle, wrapper)
