"""``netvigil detect``: run a registry detector (default ``registry.DEFAULT``) incrementally."""

from __future__ import annotations

from pathlib import Path

import click

from netvigil.cli.common import handle_errors, open_store, store_option
from netvigil.detect.registry import DEFAULT, detector_names, get_detector
from netvigil.events.runner import run_detection
from netvigil.model import EntityRef


@click.command("detect")
@store_option
@click.option("--entity", "entity_text", metavar="TYPE/CODE", default=None,
              help="Only this entity, e.g. country/KZ.")
@click.option("--rebuild", is_flag=True, default=False,
              help="Recompute every selected series from scratch (ignore saved states).")
@click.option("--detector", "detector_name", type=click.Choice(detector_names()),
              default=DEFAULT, show_default=True,
              help="Detector from the registry (ioda.median is the reference).")
@click.option("--engine", type=click.Choice(["local", "dask"]), default="local",
              show_default=True, help="dask: country shards on Dask workers "
                                      "(docs/distributed.md).")
@click.option("--scheduler", default="local:2", show_default=True,
              help="With --engine dask: local:N worker processes, ssh:SCHEDULER,WORKER[,...]"
                   " (Dask's SSHCluster, for this command) or a scheduler address.")
@click.option("--shards", type=click.IntRange(min=1), default=None,
              help="With --engine dask: country shards (default: one per worker).")
@handle_errors
def detect(store_path: Path, entity_text: str | None, rebuild: bool,
           detector_name: str, engine: str, scheduler: str, shards: int | None) -> None:
    """Detect outages incrementally: new points of every series are fed to the detector
    from its saved state; events of the touched entities are rebuilt."""
    ref = EntityRef.parse(entity_text) if entity_text else None
    if engine == "dask":
        if ref is not None:
            raise click.UsageError("--entity runs in one process: drop --engine dask")
        from netvigil.distributed.detect import run_detection_dask
        from netvigil.distributed.engine import dask_client, n_workers

        with open_store(store_path):  # migrated and not locked by a writer: then let go
            pass
        with dask_client(scheduler) as client:
            run = run_detection_dask(client, store_path, detector=detector_name,
                                     shards=shards or n_workers(client), rebuild=rebuild,
                                     progress=lambda line: click.echo(line, err=True))
        rep = run.report
        click.echo(f"dask: {run.shards} shard(s) of {run.groups} country group(s), "
                   f"entities per shard {list(run.sizes)}"
                   + (f", {run.resumed} resumed from an interrupted run" if run.resumed else ""))
    else:
        with open_store(store_path) as store:
            rep = run_detection(store, ref, rebuild=rebuild,
                                detector=get_detector(detector_name))
    click.echo(
        f"series examined {rep.series_examined}: updated {rep.series_updated}, "
        f"recomputed {rep.series_recomputed}, unchanged {rep.series_unchanged}, "
        f"skipped {rep.series_skipped} (not judged: higher is worse)"
    )
    click.echo(f"points read {rep.points_read}")
    click.echo(f"alerts written {rep.alerts_written}")
    click.echo(f"entities touched {rep.entities_touched}, events written {rep.events_written}")


def register(group: click.Group) -> None:
    group.add_command(detect)
