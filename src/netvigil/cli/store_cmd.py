"""``netvigil store info|export-parquet``: inspect and share the store."""

from __future__ import annotations

from pathlib import Path

import click

from netvigil.cli.common import handle_errors, open_store, render_table, store_option
from netvigil.model import StoreError
from netvigil.store import Store


@click.group("store")
def store_group() -> None:
    """Inspect and export the store."""


def _open_existing(path: Path) -> Store:
    """Read-only (read-only media, other readers) and waiting for a writer's lock: both
    commands here only read the store."""
    if not path.exists():
        raise StoreError(f"no store at {path} (import something first)")
    return open_store(path, read_only=True)


@store_group.command("info")
@store_option
@handle_errors
def info_cmd(store_path: Path) -> None:
    """Schema version and row counts per table."""
    with _open_existing(store_path) as store:
        version = store.schema_version()
        counts = store.table_counts()
    click.echo(f"store: {store_path}")
    click.echo(f"schema version: {version}")
    click.echo(render_table(("table", "rows"), sorted(counts.items())))


@store_group.command("export-parquet")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@store_option
@handle_errors
def export_cmd(directory: Path, store_path: Path) -> None:
    """Write one Parquet file per table into DIRECTORY."""
    with _open_existing(store_path) as store:
        paths = store.export_parquet(directory)
    for p in paths:
        click.echo(str(p))


@store_group.command("import-parquet")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@store_option
@handle_errors
def import_parquet_cmd(directory: Path, store_path: Path) -> None:
    """Load a partitioned point dataset (source=/date=/hour=, docs/distributed.md)."""
    from netvigil.distributed.dataset import import_dataset

    with open_store(store_path) as store:
        rep = import_dataset(store, directory)
    click.echo(f"parts {rep.files}, rows {rep.rows}: inserted {rep.inserted}, "
               f"updated {rep.updated}, unchanged {rep.unchanged}")


@store_group.command("compact")
@store_option
@handle_errors
def compact_cmd(store_path: Path) -> None:
    """Cluster closed days of points by series (Store.compact_points; idempotent, daily)."""
    if not store_path.exists():
        raise StoreError(f"no store at {store_path} (import something first)")
    with open_store(store_path) as store:
        done = store.compact_points()
    click.echo(f"compacted {done.rows} points" + (
        f" in [{done.start}, {done.until})" if done.rows else " (nothing newly closed)"))


@store_group.command("prune-round-log")
@click.option("--keep-days", type=click.IntRange(0), default=7, show_default=True,
              help="Days of probe rounds kept behind the newest logged round.")
@store_option
@handle_errors
def prune_round_log_cmd(store_path: Path, keep_days: int) -> None:
    """Fold old probe rounds into the round log's base (pipeline.roundlog.prune_log).

    A late remote round older than the base can then no longer be combined in order: the
    collector archives it and answers that it was not folded. The observatory does this by
    itself (round_log_keep_days)."""
    from netvigil.pipeline.roundlog import prune_log

    if not store_path.exists():
        raise StoreError(f"no store at {store_path} (import something first)")
    with open_store(store_path) as store:
        done = prune_log(store, keep_days * 86_400)
    if done.kept < 0:
        click.echo(f"nothing newly prunable (log base before {done.before})")
        return
    click.echo(f"folded {done.folded} round(s) into the base before {done.before}; kept "
               f"{done.kept}; dropped {done.stale} stale; log {done.bytes_before} -> "
               f"{done.bytes_after} bytes")


def register(group: click.Group) -> None:
    group.add_command(store_group)
