"""``netvigil serve``: the HTTP API (and whatever routers :mod:`netvigil.serve.app` lists).

Binds 127.0.0.1 unless told otherwise: exposing the API is the operator's decision.

uvicorn runs with uvloop (its "auto" loop when installed, as pyproject.toml declares) and
:class:`netvigil.serve.app.OneWriteProtocol` (its httptools parser, sending a response's
head and body in one ``writev`` instead of two ``write`` calls: docs/api.md "Load").
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from netvigil.cli.common import LOCK_WAIT_ENV, WAIT_KEY, handle_errors, open_store, store_option

SERVE_WAIT_DEFAULT = 10.0  # a request waits less than a command: 503 + Retry-After after


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


#: uvicorn kills a worker that has not answered its supervisor's ping in this long (its
#: default, 5 s, killed workers still importing on a loaded machine, over and over: at load
#: 12 on 2 cores, tests/test_serve_workers.py never saw both ready in 60 s)
WORKER_HEALTHCHECK_SECONDS = 60

#: how ``--workers`` processes learn their settings: uvicorn starts each worker by import
#: string, so the settings travel in the environment (read by :func:`app_from_env`)
SETTINGS_ENV = "NETVIGIL_SERVE_SETTINGS"


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535),
              help="TCP port.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Server processes sharing the port (uvicorn); each holds its own "
                   "in-memory snapshot and answer cache.")
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
                               "access_log": False, "http": OneWriteProtocol}
    if workers == 1:
        uvicorn.run(_app(settings), **options)
        return
    os.environ[SETTINGS_ENV] = json.dumps(settings)
    uvicorn.run(f"{__name__}:app_from_env", factory=True, workers=workers,
                timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS, **options)


def _app(settings: dict[str, Any]) -> Any:
    from netvigil.serve.app import create_app

    return create_app(Path(settings["store"]), open_store=open_store,
                      lock_wait=float(settings["wait"]),
                      memory_points=int(settings["memory_points"]))


def app_from_env() -> Any:
    """The app of one ``--workers`` process (uvicorn's factory)."""
    return _app(json.loads(os.environ[SETTINGS_ENV]))


def register(group: click.Group) -> None:
    group.add_command(serve)
