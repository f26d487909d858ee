"""``netvigil series import|list``: get measurements into the store and see what is there."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import click

from netvigil.cli.common import handle_errors, iso_utc, open_store, render_table, store_option
from netvigil.pipeline import Pipeline
from netvigil.series.importers import FORMATS, import_file
from netvigil.store import SeriesInfo

LIST_COLUMNS = ("entity_type", "entity_code", "signal", "points", "first", "last")


@click.group("series")
def series_group() -> None:
    """Import and list time series."""


@series_group.command("import")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(sorted(FORMATS)), default=None,
              help="Input format (default: from the extension, else from the content).")
@click.option("--on-error", type=click.Choice(["fail", "skip"]), default="fail",
              show_default=True,
              help="fail: write nothing on the first bad row; skip: skip bad rows, report them.")
@click.option("--engine", type=click.Choice(["local", "dask"]), default="local",
              show_default=True,
              help="dask: files validated on Dask workers, written here in the order given; "
                   "the same store as local; a re-run resumes (docs/distributed.md).")
@click.option("--scheduler", default="local:2", show_default=True,
              help="With --engine dask: local:N worker processes, ssh:SCHEDULER,WORKER[,...]"
                   " (Dask's SSHCluster, for this command) or a scheduler address.")
@store_option
@handle_errors
def import_cmd(files: tuple[Path, ...], fmt: str | None, on_error: str, engine: str,
               scheduler: str, store_path: Path) -> None:
    """Import FILES (CSV long format or IODA signals/raw JSON, optionally .gz).

    Several files are imported in the order given in ONE transaction: under --on-error fail
    a bad file writes nothing of any file; a later file's points update an earlier one's.
    """
    work = None
    with open_store(store_path) as store:
        sink = Pipeline(store)
        if engine == "dask":
            from netvigil.distributed.engine import dask_client
            from netvigil.distributed.series import import_files_dask, work_dir

            work = work_dir(store_path.parent / f".{store_path.name}.work", files, fmt,
                            on_error)
            with dask_client(scheduler) as client:
                done = import_files_dask(client, store, files, fmt, on_error, work, sink=sink,
                                         progress=lambda line: click.echo(line, err=True))
            summaries = done.summaries
            click.echo(f"dask: {done.resumed} file(s) already validated (resumed)", err=True)
        else:
            with store.transaction():
                summaries = [import_file(store, f, fmt, on_error, sink=sink) for f in files]
    if work is not None:  # the store has the import: its parts are no longer needed
        shutil.rmtree(work, ignore_errors=True)
    for summary in summaries:
        click.echo(summary.text())
        if summary.skipped:
            click.echo(f"skipped {summary.skipped} bad row(s) by reason:", err=True)
            for line in summary.skip_report.lines():
                click.echo(line, err=True)


def _rows(infos: list[SeriesInfo]) -> list[tuple[str, str, str, int, str | None, str | None]]:
    return [
        (i.entity.type.value, i.entity.code, i.signal, i.points, iso_utc(i.first),
         iso_utc(i.last))
        for i in infos
    ]


@series_group.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@store_option
@handle_errors
def list_cmd(fmt: str, store_path: Path) -> None:
    """List stored series sorted by entity type, code and signal."""
    infos: list[SeriesInfo] = []
    if store_path.exists():  # listing must not create a store as a side effect
        with open_store(store_path, read_only=True) as store:
            infos = store.list_series()
    rows = _rows(infos)
    if fmt == "json":
        click.echo(json.dumps([dict(zip(LIST_COLUMNS, r, strict=True)) for r in rows],
                              indent=2))
    else:
        click.echo(render_table(LIST_COLUMNS, rows))


def register(group: click.Group) -> None:
    group.add_command(series_group)
