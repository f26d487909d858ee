"""``netvigil demo``: replay the Kazakhstan January 2022 shutdown (a RECONSTRUCTION).

Why a separate default store: the demo writes ~100 generated series; they must never mix with
a user's measured data, so unless ``--store`` / NETVIGIL_STORE is given the store lives inside
the report folder.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import click

from netvigil.cli.common import STORE_ENV, handle_errors
from netvigil.detect.registry import DEFAULT

DEFAULT_OUT = Path("netvigil-report-kz2022")


@click.command("demo")
@click.option("--store", "store_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None,
              help="DuckDB store to write the demo into. Default: <OUT>/store.duckdb, "
                   f"unless {STORE_ENV} is set (then that store is used).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=DEFAULT_OUT, show_default=True, help="Report folder.")
@click.option("--seed", type=int, default=None,
              help="Generator seed (default: the scenario's, 20220105).")
@handle_errors
def demo(store_path: Path | None, out_dir: Path, seed: int | None) -> None:
    """Replay a RECONSTRUCTION of the Kazakhstan January 2022 shutdown.

    Generates probe rounds, per-peer BGP routes and messaging-test outcomes from the public
    timeline (not measured data), feeds them through the pipeline real data takes, detects
    events and writes a report folder (timeline, events JSON/CSV, NetBlocks-style sentences,
    PNG chart).
    """
    from netvigil.reports.demo import run_demo
    from netvigil.reports.folder import banner
    from netvigil.reports.netblocks import sentences
    from netvigil.reports.timeline import render_table
    from netvigil.scenarios.kz2022 import load_scenario
    from netvigil.store.duck import Store

    t0 = time.perf_counter()
    sc = load_scenario()
    click.echo(banner(sc.label, sc.title))
    env = os.environ.get(STORE_ENV, "").strip()
    path = store_path or (Path(env) if env else out_dir / "store.duckdb")
    out_dir.mkdir(parents=True, exist_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    with Store(path) as store:
        result = run_demo(store, out_dir, seed=seed)
    shown = result.headline()
    click.echo(f"\nEvent timeline (detected by {DEFAULT}, the default detector, on the "
               "reconstructed signals; the country and its main networks):\n")
    click.echo(render_table(shown))
    rest = len(result.events) - len(shown)
    if rest:
        click.echo(f"(+ {rest} events on smaller networks: see timeline.txt)")
    click.echo("\nIn words:\n")
    for s in sentences(shown, reconstruction=True):
        click.echo(f"- {s}")
    click.echo(f"\nStore: {path}")
    click.echo(f"Report folder: {out_dir.resolve()}")
    click.echo(f"Done in {time.perf_counter() - t0:.1f} s. {sc.label}.")


def register(group: click.Group) -> None:
    group.add_command(demo)
