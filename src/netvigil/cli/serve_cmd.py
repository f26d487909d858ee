"""``netvigil serve``: the HTTP API (and whatever routers :mod:`netvigil.serve.app` lists).

Binds 127.0.0.1 unless told otherwise: exposing the API is the operator's decision.
"""

from __future__ import annotations

import os
from pathlib import Path

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


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535),
              help="TCP port.")
@store_option
@click.pass_context
@handle_errors
def serve(ctx: click.Context, host: str, port: int, store_path: Path) -> None:
    """Serve the API (/api/v1, /ioda/v2), /health and /metrics over HTTP."""
    import uvicorn

    from netvigil.serve.app import create_app

    app = create_app(store_path, open_store=open_store, lock_wait=_request_wait(ctx))
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def register(group: click.Group) -> None:
    group.add_command(serve)
