"""``netvigil alerts``: dispatch alert transitions and write Atom feeds."""

from __future__ import annotations

import time
from pathlib import Path

import click

from netvigil.cli.common import handle_errors, open_store, store_option


@click.group("alerts")
def alerts() -> None:
    """Alerts: one message per outage transition (opened, ended) to webhooks and e-mail,
    and Atom feeds. Subscriptions and channels are in a TOML file (docs/alerts.md)."""


@alerts.command("dispatch")
@store_option
@click.option("--config", "config_path", required=True,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Alert configuration (TOML).")
@handle_errors
def dispatch_cmd(store_path: Path, config_path: Path) -> None:
    """Enqueue new transitions of the stored events and deliver what is due (one pass)."""
    from netvigil.alerts import dispatch, load_config

    config = load_config(config_path)
    with open_store(store_path, read_only=True) as store:
        events = store.read_events()
    r = dispatch(config, events)
    click.echo(f"enqueued {r.enqueued}, delivered {r.delivered}, retried {r.retried}, "
               f"failed {r.failed}, pending {r.pending}")


@alerts.command("feed")
@store_option
@click.option("--country", default=None, help="Only this country and its regions (ISO alpha-2).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the feed here (default: standard output).")
@handle_errors
def feed_cmd(store_path: Path, country: str | None, out: Path | None) -> None:
    """Write the Atom feed of transitions (global, or one country's)."""
    from netvigil.alerts.feeds import atom_feed, in_country

    with open_store(store_path, read_only=True) as store:
        events = store.read_events()
    cc = country.upper() if country else None
    if cc:
        events = [e for e in events if in_country(e, cc)]
    body = atom_feed(events, title=f"NetVigil: outage transitions{f' in {cc}' if cc else ''}",
                     feed_id=f"urn:netvigil:feed:{f'country:{cc}' if cc else 'global'}",
                     self_url=f"file:{out}" if out else "urn:netvigil:stdout",
                     now=int(time.time()))
    if out is None:
        click.echo(body.decode())
    else:
        part = out.with_name(out.name + ".part")
        part.write_bytes(body)
        part.replace(out)


def register(group: click.Group) -> None:
    group.add_command(alerts)
