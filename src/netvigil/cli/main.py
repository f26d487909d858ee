"""The ``netvigil`` command. Each sub-command lives in its own module and registers here."""

from __future__ import annotations

import importlib

import click

from netvigil import __version__

# Modules that define a ``register(group)`` function; the only list to edit to add a command.
COMMAND_MODULES = (
    "netvigil.cli.series_cmd",
    "netvigil.cli.detect_cmd",
    "netvigil.cli.events_cmd",
    "netvigil.cli.entities_cmd",
    "netvigil.cli.store_cmd",
    "netvigil.cli.demo_cmd",
    "netvigil.cli.bgp_cmd",
    "netvigil.cli.probe_cmd",
    "netvigil.cli.run_cmd",
)


@click.group()
@click.version_option(__version__, prog_name="netvigil")
def cli() -> None:
    """NetVigil: an open internet-shutdown observatory."""


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(cli)


def main() -> None:
    cli()
