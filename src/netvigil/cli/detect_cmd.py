"""``netvigil detect``: run the reference detector incrementally over the store."""

from __future__ import annotations

from pathlib import Path

import click

from netvigil.cli.common import handle_errors, open_store, store_option
from netvigil.events.runner import run_detection
from netvigil.model import EntityRef


@click.command("detect")
@store_option
@click.option("--entity", "entity_text", metavar="TYPE/CODE", default=None,
              help="Only this entity, e.g. country/KZ.")
@handle_errors
def detect(store_path: Path, entity_text: str | None) -> None:
    """Detect outages (ioda.median) on changed series and rebuild their entities' events."""
    ref = EntityRef.parse(entity_text) if entity_text else None
    with open_store(store_path) as store:
        rep = run_detection(store, ref)
    click.echo(
        f"series examined {rep.series_examined}: recomputed {rep.series_recomputed}, "
        f"unchanged {rep.series_unchanged}, skipped {rep.series_skipped} (higher is worse)"
    )
    click.echo(f"alerts written {rep.alerts_written}")
    click.echo(f"entities touched {rep.entities_touched}, events written {rep.events_written}")


def register(group: click.Group) -> None:
    group.add_command(detect)
