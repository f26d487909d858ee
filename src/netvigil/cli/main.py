"""The ``netvigil`` command. Each sub-command lives in its own module and registers here."""

from __future__ import annotations

import importlib
from typing import Any

import click
import duckdb

from netvigil import __version__
from netvigil.cli.common import DEBUG_KEY, LOCK_WAIT_ENV, WAIT_KEY, report
from netvigil.model.errors import NetVigilError

# Modules that define a ``register(group)`` function; the only list to edit to add a command.
COMMAND_MODULES = (
    "netvigil.cli.series_cmd",
    "netvigil.cli.detect_cmd",
    "netvigil.cli.bench_cmd",
    "netvigil.cli.events_cmd",
    "netvigil.cli.entities_cmd",
    "netvigil.cli.store_cmd",
    "netvigil.cli.demo_cmd",
    "netvigil.cli.bgp_cmd",
    "netvigil.cli.probe_cmd",
    "netvigil.cli.run_cmd",
    "netvigil.cli.report_cmd",
    "netvigil.cli.alerts_cmd",
    "netvigil.cli.ooni_cmd",
    "netvigil.cli.serve_cmd",
)


class BoundaryGroup(click.Group):
    """The outer error boundary (cli/common.py docstring has the exit-status table): a
    failure a command did not map itself still becomes one line and its class's status."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (NetVigilError, duckdb.Error, OSError) as exc:
            report(exc)


@click.group(cls=BoundaryGroup)
@click.version_option(__version__, prog_name="netvigil")
@click.option("--debug", is_flag=True, help="Show the traceback of a failure.")
@click.option("--wait", "wait", type=click.FloatRange(min=0), metavar="SECONDS",
              default=None,
              help=f"How long to wait for another process's lock on the store "
                   f"(default: {LOCK_WAIT_ENV} or 60).")
@click.pass_context
def cli(ctx: click.Context, debug: bool, wait: float | None) -> None:
    """NetVigil: an open internet-shutdown observatory."""
    ctx.meta[DEBUG_KEY] = debug
    if wait is not None:
        ctx.meta[WAIT_KEY] = float(wait)


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(cli)


def main() -> None:
    cli()
