"""``netvigil serve``: the HTTP API (and whatever routers :mod:`netvigil.serve.app` lists).

Binds 127.0.0.1 unless told otherwise: exposing the API is the operator's decision.

uvicorn runs with asyncio's own loop (:data:`LOOP` says why not uvloop) and
:class:`netvigil.serve.app.OneWriteProtocol` (its httptools parser, sending a response's
head and body in one ``writev`` instead of two ``write`` calls: docs/api.md "Load").
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import click

from netvigil.cli.common import LOCK_WAIT_ENV, WAIT_KEY, handle_errors, open_store, store_option
from netvigil.model.errors import NetVigilError

SERVE_WAIT_DEFAULT = 10.0  # a request waits less than a command: 503 + Retry-After after

#: uvicorn's event loop: the standard library's, not uvloop. Why: libuv (uvloop 0.23 bundles
#: 1.52; since 1.45, libuv PR #3696) accepts ONE connection per loop iteration, so when a busy
#: loop's iteration serves ~100 ready requests (~16 ms) a burst of new connections is taken
#: one per iteration: in the load benchmark, the first requests of 70 of wrk's 100
#: connections waited 0.10-1.19 s (packet capture on lo), which wrk's latency correction
#: turns into a 302-638 ms p99 with one worker. asyncio's selector loop accepts up to the
#: backlog per wake-up; with it the one-worker p99 was 22.6-34.2 ms at the same throughput
#: and CPU per request (docs/api.md "Load").
LOOP = "asyncio"


def _request_wait(ctx: click.Context) -> float:
    """``netvigil --wait S`` or NETVIGIL_LOCK_WAIT if given, else 10 s per request."""
    given = ctx.find_root().meta.get(WAIT_KEY)
    if isinstance(given, float):
        return given
    raw = os.environ.get(LOCK_WAIT_ENV, "")
    try:
        return max(0.0, float(raw)) if raw else SERVE_WAIT_DEFAULT
    except ValueError:
        return SERVE_WAIT_DEFAULT


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535),
              help="TCP port.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Server processes sharing the port (one SO_REUSEPORT socket each); "
                   "each holds its own in-memory snapshot and answer cache.")
@click.option("--memory-points", default=None, type=click.IntRange(0, None),
              help="Bins of series held in memory per process (9 bytes each; default "
                   "serve.memory.MAX_POINTS, 120M); 0: every chart reads the store.")
@store_option
@click.pass_context
@handle_errors
def serve(ctx: click.Context, host: str, port: int, workers: int,
          memory_points: int | None, store_path: Path) -> None:
    """Serve the API (/api/v1, /ioda/v2), /health and /metrics over HTTP."""
    import uvicorn

    from netvigil.serve.app import OneWriteProtocol
    from netvigil.serve.memory import MAX_POINTS

    settings = {"store": str(store_path), "wait": _request_wait(ctx),
                "memory_points": MAX_POINTS if memory_points is None else memory_points}
    options: dict[str, Any] = {"host": host, "port": port, "log_level": "warning",
                               "access_log": False, "http": OneWriteProtocol, "loop": LOOP}
    if workers == 1:
        uvicorn.run(_app(settings), **options)
        return
    _serve_workers(settings, host, port, workers)


#: a worker that exits sooner than this after its start is not restarted: serve stops
START_GRACE_SECONDS = 30.0
SUPERVISE_SECONDS = 0.5  # how often the parent looks at its workers


def _listener(host: str, port: int, reuse_port: bool) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(host, port,
                                                         type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    return sock


def _worker(settings: dict[str, Any], host: str, port: int) -> None:
    """One ``--workers`` process: its own listening socket on the shared port
    (``SO_REUSEPORT``), its own app (snapshot, caches), uvicorn's server loop."""
    import uvicorn

    from netvigil.serve.app import OneWriteProtocol

    sock = _listener(host, port, reuse_port=True)
    config = uvicorn.Config(_app(settings), log_level="warning", access_log=False,
                            http=OneWriteProtocol, loop=LOOP)
    uvicorn.Server(config).run(sockets=[sock])


def _serve_workers(settings: dict[str, Any], host: str, port: int, workers: int) -> None:
    """``workers`` processes, each with its own socket on the port (``SO_REUSEPORT``): the
    kernel spreads connections over them by address hash.

    Why not uvicorn's ``workers=``: its processes share one listening socket and each
    accepts what it can, so whichever is awake first takes the connections; under the
    load benchmark's 100 keep-alive clients one worker held 77, 65 and 92 of them in three
    runs and served them alone (docs/api.md "Load"). The parent only supervises (no
    health-check pings, so a worker slow to import on a loaded machine is never killed):
    a worker that dies is started again, unless it died within
    :data:`START_GRACE_SECONDS` of its start (then serve stops with an error); SIGTERM or
    SIGINT stop them all (uvicorn's graceful shutdown in each). The port is bound once
    without ``SO_REUSEPORT`` first, so a port in use fails here in one line; another
    ``SO_REUSEPORT`` server of the same user on the port would share it."""
    import multiprocessing

    try:
        _listener(host, port, reuse_port=False).close()
    except OSError as exc:
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    ctx = multiprocessing.get_context("spawn")
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)

    def start() -> tuple[Any, float]:
        proc = ctx.Process(target=_worker, args=(settings, host, port))
        proc.start()
        return proc, time.monotonic()

    procs = [start() for _ in range(workers)]
    failed: str | None = None
    try:
        while failed is None and not stop.wait(SUPERVISE_SECONDS):
            for i, (proc, started) in enumerate(procs):
                if proc.is_alive():
                    continue
                if time.monotonic() - started < START_GRACE_SECONDS:
                    failed = (f"serve: worker {i + 1} exited with status {proc.exitcode} "
                              f"{time.monotonic() - started:.1f} s after starting")
                    break
                click.echo(f"serve: worker {i + 1} exited with status {proc.exitcode}; "
                           "starting it again", err=True)
                procs[i] = start()
    finally:
        for proc, _ in procs:
            if proc.is_alive():
                proc.terminate()  # SIGTERM: uvicorn's graceful shutdown
        for proc, _ in procs:
            proc.join(timeout=60)
    if failed is not None:
        raise NetVigilError(failed)


def _app(settings: dict[str, Any]) -> Any:
    from netvigil.serve.app import create_app

    return create_app(Path(settings["store"]), open_store=open_store,
                      lock_wait=float(settings["wait"]),
                      memory_points=int(settings["memory_points"]))


def register(group: click.Group) -> None:
    group.add_command(serve)
