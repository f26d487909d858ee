"""``netvigil events``: list stored events as a table, JSON, CSV or CODF."""

from __future__ import annotations

import json
from pathlib import Path

import click

from netvigil.cli.common import (
    handle_errors,
    iso_utc,
    open_store,
    parse_time,
    render_table,
    store_option,
)
from netvigil.events.codf import to_codf
from netvigil.events.serialize import event_to_dict, events_to_csv, share_lost
from netvigil.model import EntityRef, Event


@click.command("events")
@store_option
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv", "codf"]),
              default="table", show_default=True, help="Output format.")
@click.option("--entity", "entity_text", metavar="TYPE/CODE", default=None,
              help="Only this entity, e.g. country/KZ.")
@click.option("--from", "start_text", metavar="T", default=None,
              help="Window start: ISO 8601 (UTC if no offset) or unix seconds.")
@click.option("--until", "until_text", metavar="T", default=None,
              help="Window end: ISO 8601 (UTC if no offset) or unix seconds.")
@handle_errors
def events(store_path: Path, fmt: str, entity_text: str | None, start_text: str | None,
           until_text: str | None) -> None:
    """Show events (outages explained: scope, kind, score, confidence, evidence)."""
    ref = EntityRef.parse(entity_text) if entity_text else None
    start = parse_time(start_text) if start_text else None
    until = parse_time(until_text) if until_text else None
    with open_store(store_path, read_only=True) as store:
        found = store.read_events(ref, start, until)
    found.sort(key=lambda e: (e.start, e.entity))
    if fmt == "json":
        click.echo(json.dumps([event_to_dict(e) for e in found], indent=2))
    elif fmt == "codf":
        click.echo(json.dumps([to_codf(e, until=until) for e in found], indent=2))
    elif fmt == "csv":
        click.echo(events_to_csv(found), nl=False)
    else:
        rows = [
            (e.id, e.entity.fqid, e.entity_name, iso_utc(e.start), iso_utc(e.end) or "ongoing",
             e.kind.value, e.scope.value, _lost(e), f"{e.confidence:.2f}",
             f"{e.min_ratio:.3f}", ",".join(s.signal for s in e.signals))
            for e in found
        ]
        # people read a share lost here; IODA's score product stays in json/csv/codf
        headers = ("id", "entity", "name", "start", "end", "kind", "scope", "lost %",
                   "confidence", "min_ratio", "signals")
        click.echo(render_table(headers, rows) if rows else "no events")


def register(group: click.Group) -> None:
    group.add_command(events)


def _lost(e: Event) -> str:
    lost = share_lost(e)
    return "" if lost is None else f"{lost * 100:.0f}"
