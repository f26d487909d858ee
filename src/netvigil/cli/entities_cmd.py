"""``netvigil entities search|show`` and ``netvigil geo lookup``: thin surfaces over netvigil.geo.

No logic lives here: the registry and GeoLookup answer, this module only parses options and
renders a table or JSON.
"""

from __future__ import annotations

import json
from typing import Any

import click

from netvigil.cli.common import handle_errors, parse_time, render_table
from netvigil.geo.entities import default_registry
from netvigil.geo.lookup import GeoLookup, Location
from netvigil.model.entities import Entity, EntityRef, EntityType

FORMAT_OPTION = click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table",
    show_default=True, help="Output format.",
)
TYPE_CHOICES = [EntityType.COUNTRY.value, EntityType.REGION.value, EntityType.ASN.value]


def _entity_row(ent: Entity) -> dict[str, Any]:
    return {
        "id": ent.ref.fqid,
        "type": ent.type.value,
        "code": ent.code,
        "name": ent.name,
        "parent": ent.parent.fqid if ent.parent else None,
    }


@click.group("entities")
def entities_group() -> None:
    """Countries, ISO 3166-2 regions and ASes NetVigil knows (pycountry, pyasn AS names)."""


@entities_group.command("search")
@click.argument("query")
@click.option("--type", "etype", type=click.Choice(TYPE_CHOICES), default=None,
              help="Only this entity type.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@FORMAT_OPTION
@handle_errors
def search_cmd(query: str, etype: str | None, limit: int, fmt: str) -> None:
    """Find entities by code (KZ, KZ-75, AS9198) or name substring (Almaty)."""
    found = default_registry().search(query, etype, limit)
    rows = [_entity_row(e) for e in found]
    if fmt == "json":
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo(f"no entity matches {query!r}", err=True)
        return
    click.echo(render_table(["id", "name", "parent"],
                            [[r["id"], r["name"], r["parent"]] for r in rows]))


@entities_group.command("show")
@click.argument("entity")
@FORMAT_OPTION
@handle_errors
def show_cmd(entity: str, fmt: str) -> None:
    """Show one entity given as TYPE/CODE (country/KZ, region/KZ-75, asn/9198)."""
    ref = EntityRef.parse(entity)
    registry = default_registry()
    ent = registry.get(ref)
    if ent is None:
        click.echo(f"error: unknown entity {ref.fqid}", err=True)
        raise SystemExit(1)
    children = registry.children(ref)
    counts = {
        t.value: sum(1 for c in children if c.type is t)
        for t in (EntityType.REGION, EntityType.ASN)
    }
    row = _entity_row(ent)
    row["parent_name"] = registry.name(ent.parent) if ent.parent else None
    row["children"] = counts
    row["attrs"] = dict(ent.attrs)
    if fmt == "json":
        click.echo(json.dumps(row, ensure_ascii=False, indent=2))
        return
    pairs: list[list[object]] = [
        ["id", row["id"]],
        ["name", row["name"]],
        ["parent", f"{row['parent']} ({row['parent_name']})" if ent.parent else None],
        ["regions", counts["region"]],
        ["ases", counts["asn"]],
    ]
    pairs.extend([k, v] for k, v in ent.attrs)
    click.echo(render_table(["field", "value"], pairs))


@click.group("geo")
def geo_group() -> None:
    """IP → country / region / AS as of a date."""


@geo_group.command("lookup")
@click.argument("ip_or_prefix")
@click.option("--at", "at", default=None, metavar="ISO_DATE",
              help="As-of time (ISO 8601, UTC if no offset, or unix seconds); default now.")
@FORMAT_OPTION
@handle_errors
def lookup_cmd(ip_or_prefix: str, at: str | None, fmt: str) -> None:
    """Which country, region and AS IP_OR_PREFIX belonged to (a prefix maps by its network)."""
    when = parse_time(at) if at is not None else None
    loc = GeoLookup.default().locate(ip_or_prefix, when)
    row = _location_row(ip_or_prefix, loc)
    if fmt == "json":
        click.echo(json.dumps(row, ensure_ascii=False, indent=2))
        return
    click.echo(render_table(["field", "value"], [[k, v] for k, v in row.items()]))


def _location_row(query: str, loc: Location) -> dict[str, Any]:
    registry = default_registry()
    country_name = registry.name(EntityRef(EntityType.COUNTRY, loc.country)) \
        if loc.country else None
    asn_name = registry.name(EntityRef(EntityType.ASN, str(loc.asn))) if loc.asn else None
    region_name = registry.name(EntityRef(EntityType.REGION, loc.region)) \
        if loc.region else None
    return {
        "query": query,
        "country": loc.country,
        "country_name": country_name,
        "region": loc.region,
        "region_name": region_name,
        "asn": loc.asn,
        "asn_name": asn_name,
        "country_source": loc.country_source,
        "snapshot_date": loc.snapshot_date.isoformat() if loc.snapshot_date else None,
        "before_snapshots": loc.before_snapshots,
        "asn_source": loc.asn_source,
    }


def register(group: click.Group) -> None:
    group.add_command(entities_group)
    group.add_command(geo_group)
