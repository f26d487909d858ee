"""The ``netvigil`` command. Each sub-command lives in its own module and registers here."""

from __future__ import annotations

import importlib
from typing import Any

import click
import duckdb

from netvigil import __version__
from netvigil.cli.common import DEBUG_KEY, LOCK_WAIT_ENV, WAIT_KEY, report
from netvigil.model.errors import NetVigilError

#: Each top-level command and the module whose ``register(group)`` adds it (a module may
#: add several); the only table to edit to add a command. A command's module is imported
#: when the command is asked for, not at start: importing all fourteen cost 0.8-0.9 CPU s per
#: ``netvigil`` process here against 0.5 s for the shared part (duckdb, click, the store),
#: and an observatory, a test suite or a shell loop starts many.
COMMANDS: dict[str, str] = {
    "series": "netvigil.cli.series_cmd",
    "detect": "netvigil.cli.detect_cmd",
    "bench": "netvigil.cli.bench_cmd",
    "events": "netvigil.cli.events_cmd",
    "entities": "netvigil.cli.entities_cmd",
    "geo": "netvigil.cli.entities_cmd",
    "store": "netvigil.cli.store_cmd",
    "demo": "netvigil.cli.demo_cmd",
    "bgp": "netvigil.cli.bgp_cmd",
    "probe": "netvigil.cli.probe_cmd",
    "run": "netvigil.cli.run_cmd",
    "report": "netvigil.cli.report_cmd",
    "alerts": "netvigil.cli.alerts_cmd",
    "ooni": "netvigil.cli.ooni_cmd",
    "tor": "netvigil.cli.ooni_cmd",
    "serve": "netvigil.cli.serve_cmd",
}


class BoundaryGroup(click.Group):
    """The outer error boundary (cli/common.py docstring has the exit-status table): a
    failure a command did not map itself still becomes one line and its class's status."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command, its module imported (and registered) on first use."""
        module = COMMANDS.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            importlib.import_module(module).register(self)
        return self.commands.get(cmd_name)

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


def main() -> None:
    cli()
