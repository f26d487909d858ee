"""``netvigil probe``: run the Trinocular-style prober, build target lists, collect rounds."""

from __future__ import annotations

import math
import socket
import sys
from pathlib import Path

import click

from netvigil.cli.common import handle_errors, iso_utc, render_table, store_option
from netvigil.model.errors import InputError


def _selection_options(func: click.decorators.FC) -> click.decorators.FC:
    func = click.option("--keep-sparse", is_flag=True,
                        help="Keep blocks failing the rule (flagged sparse) instead of "
                             "dropping them.")(func)
    func = click.option("--min-availability", type=click.FloatRange(0, 1), default=0.1,
                        show_default=True, help="Minimum A(E(b)) of a probed block.")(func)
    func = click.option("--min-addresses", type=click.IntRange(1, 256), default=15,
                        show_default=True, help="Minimum |E(b)| of a probed block.")(func)
    return func


@click.group("probe")
def probe() -> None:
    """Active probing of /24 blocks (Trinocular): targets, rounds, collection."""


@probe.command("run")
@click.option("--targets", "targets_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV: block,address,availability or block,addresses,availability "
                   "[,entity].")
@click.option("--round-seconds", type=click.IntRange(1), default=600, show_default=True)
@click.option("--rounds", type=click.IntRange(1), default=None,
              help="Stop after N rounds (default: run until interrupted).")
@click.option("--rate", type=click.FloatRange(min=1), default=10_000.0, show_default=True,
              help="Global probe rate limit, probes/s.")
@click.option("--timeout", type=click.FloatRange(min=0.01), default=None,
              help="Probe timeout in seconds [default: 3, or round/6 for rounds under 18 s].")
@click.option("--slices", type=click.IntRange(1), default=60, show_default=True)
@click.option("--budget", type=click.IntRange(1, 255), default=15, show_default=True,
              help="Probes per block per round (periodic + adaptive + recovery).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the per-block offsets (keep it fixed across runs).")
@click.option("--vantage", default=None, help="Name of this vantage point [default: host].")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Append one JSON line per block per round here.")
@click.option("--align", is_flag=True,
              help="Start rounds on wall-clock multiples of the round length (needed to "
                   "collect several vantage points into the same bins).")
@click.option("--no-store", is_flag=True, help="Do not write the store.")
@click.option("--no-block-states", is_flag=True,
              help="Store only entity series, not a probing-state point per block.")
@_selection_options
@store_option
@handle_errors
def run_cmd(targets_path: Path, round_seconds: int, rounds: int | None, rate: float,
            timeout: float | None, slices: int, budget: int, seed: int, vantage: str | None,
            out_path: Path | None, align: bool, no_store: bool, no_block_states: bool,
            min_addresses: int, min_availability: float, keep_sparse: bool,
            store_path: Path) -> None:
    """Probe every target block each round; write JSONL and the probing series."""
    from netvigil.sources.probing import runner
    from netvigil.sources.probing.belief import BeliefModel
    from netvigil.sources.probing.prober import ProberConfig
    from netvigil.sources.probing.targets import SelectionRule, load_targets_csv

    sel = load_targets_csv(targets_path,
                           SelectionRule(min_addresses, min_availability, keep_sparse))
    if len(sel.targets) == 0:
        raise InputError(str(targets_path), None,
                         f"no block passes the selection rule (|E(b)| >= {min_addresses}, "
                         f"A >= {min_availability}); see --keep-sparse")
    if timeout is None:
        timeout = min(3.0, round_seconds / 6)
    cfg = ProberConfig(round_seconds=float(round_seconds), slices=min(slices, 10 * round_seconds),
                       timeout=timeout, rate=rate, seed=seed,
                       vantage=vantage or socket.gethostname(), align=align,
                       model=BeliefModel(max_probes=budget))
    click.echo(f"probing {len(sel.targets)} blocks ({sel.dropped_sparse} sparse dropped, "
               f"{sel.kept_sparse} sparse kept) every {round_seconds}s from {cfg.vantage}, "
               f"timeout {timeout:g}s, rate {rate:g}/s", err=True)

    def report(_res: object, info: dict[str, object]) -> None:
        loss = info["loss"]
        loss_txt = "-" if not isinstance(loss, float) or math.isnan(loss) else f"{loss:.1%}"
        start = info["round_start"]
        assert isinstance(start, float)
        click.echo(f"round {info['round']} {iso_utc(int(start))}: up {info['up']} "
                   f"down {info['down']} uncertain {info['uncertain']} "
                   f"unprobed {info['unprobed']} probes {info['probes']} loss {loss_txt}"
                   + (f" backlog {info['backlog']}" if info["backlog"] else ""))

    store = None
    pipeline = None
    if not no_store:
        from netvigil.pipeline import Pipeline
        from netvigil.pipeline.probing import ProbingOptions
        from netvigil.store.duck import Store

        store = Store(store_path)
        pipeline = Pipeline(store, probing=ProbingOptions(block_series=not no_block_states))
    try:
        runner.run(sel.targets, cfg, rounds, out=out_path, sink=pipeline, on_round=report)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    finally:
        if store is not None:
            store.close()


@probe.command("targets")
@click.option("--targets", "targets_path", default=None,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Check a targets CSV.")
@click.option("--census", "census_path", default=None,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Build targets from a census CSV (address,reply or "
                   "address,probes,replies).")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Write the selected targets (block,addresses,availability).")
@_selection_options
@handle_errors
def targets_cmd(targets_path: Path | None, census_path: Path | None, out_path: Path | None,
                min_addresses: int, min_availability: float, keep_sparse: bool) -> None:
    """Apply the selection rule to a targets or census file and summarise it."""
    from netvigil.sources.probing.targets import (
        SelectionRule,
        build_from_census,
        load_targets_csv,
        write_targets_csv,
    )

    if (targets_path is None) == (census_path is None):
        raise click.UsageError("give exactly one of --targets or --census")
    rule = SelectionRule(min_addresses, min_availability, keep_sparse)
    if targets_path is not None:
        sel = load_targets_csv(targets_path, rule)
    else:
        assert census_path is not None
        sel = build_from_census(census_path, rule)
    t = sel.targets
    sizes = t.sizes
    rows: list[list[object]] = [["blocks considered", sel.considered], ["blocks selected", len(t)],
            ["sparse dropped", sel.dropped_sparse], ["sparse kept", sel.kept_sparse],
            ["mean |E(b)|", f"{float(sizes.mean()):.1f}" if len(t) else "-"],
            ["median A(E(b))", f"{float(sorted(t.availability)[len(t) // 2]):.3f}"
             if len(t) else "-"]]
    click.echo(render_table(["", "value"], rows))
    if out_path is not None:
        write_targets_csv(t, out_path)
        click.echo(f"wrote {len(t)} blocks to {out_path}")


@probe.command("collect")
@click.option("--in", "inputs", multiple=True, required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Round JSONL of one vantage point (repeat for each).")
@click.option("--targets", "targets_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--round-seconds", type=click.IntRange(1), default=600, show_default=True)
@click.option("--expect", default="", help="Comma-separated vantage points that should report.")
@click.option("--min-coverage", type=click.FloatRange(0, 1), default=1.0, show_default=True,
              help="Share of an entity's blocks that must be reported for a value.")
@click.option("--no-store", is_flag=True)
@_selection_options
@store_option
@handle_errors
def collect_cmd(inputs: tuple[Path, ...], targets_path: Path, round_seconds: int, expect: str,
                min_coverage: float, no_store: bool, min_addresses: int,
                min_availability: float, keep_sparse: bool, store_path: Path) -> None:
    """Merge rounds from several vantage points into one probing series + health facts.

    The lines are replayed as per-(vantage, round) facts through the pipeline, which chains
    each vantage point's beliefs and combines the vantage points per bin (up if anyone saw
    the block up); the health table comes from the states the probers reported.
    """
    from netvigil.sources.probing.signals import facts_from_lines, read_jsonl
    from netvigil.sources.probing.targets import SelectionRule, load_targets_csv
    from netvigil.sources.probing.vantage import collect

    sel = load_targets_csv(targets_path,
                           SelectionRule(min_addresses, min_availability, keep_sparse))
    expected = [e.strip() for e in expect.split(",") if e.strip()]
    lines = list(read_jsonl(inputs))
    got = collect(lines, sel.targets, round_seconds, expected=expected)
    rows = [[h.vantage, iso_utc(h.time), h.blocks_reported, h.blocks_up, h.status]
            for h in got.health]
    click.echo(render_table(["vantage", "round", "reported", "up", "status"], rows))
    if not no_store:
        from netvigil.pipeline import Pipeline
        from netvigil.pipeline.probing import ProbingOptions
        from netvigil.store.duck import Store

        opts = ProbingOptions(block_series=False, min_coverage=min_coverage,
                              source="probing-collector")
        with Store(store_path) as store:
            pipeline = Pipeline(store, probing=opts)
            for fact in facts_from_lines(lines, sel.targets, round_seconds):
                pipeline.emit(fact)
            pipeline.flush({f"probing.health.{h.vantage}.{h.time}": h.status
                            for h in got.health})
        click.echo(f"wrote {pipeline.stats.points} points "
                   f"({pipeline.stats.facts.get('ProbeRound', 0)} vantage rounds) to "
                   f"{store_path}")


@probe.command("merge")
@click.option("--dataset", "root", required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Round partitions of the fleet (source=probe-rounds/date=/hour=/part-V.parquet"
                   ", written by netvigil.distributed.fleet.write_rounds).")
@click.option("--follow", is_flag=True,
              help="Keep merging: one long-lived merger (the pipeline's bins stay in memory).")
@click.option("--interval", type=click.FloatRange(min=0.1), default=60.0, show_default=True,
              help="With --follow: seconds between passes over the dataset.")
@click.option("--passes", type=click.IntRange(1), default=None,
              help="With --follow: stop after N passes (default: until interrupted).")
@store_option
@handle_errors
def merge_cmd(root: Path, follow: bool, interval: float, passes: int | None,
              store_path: Path) -> None:
    """Merge a probing fleet's round partitions into the store, per round bin.

    Rounds newer than the per-vantage cursor ``fleet:merged`` go in (round start, vantage)
    order into the one pipeline, which combines every vantage point reporting a bin (up if
    anyone saw it up) and re-emits a bin a late report joins (last 6 bins). With
    ``--follow`` the pipeline lives across passes and the store is opened only while a pass
    writes (as ``netvigil run`` does between bins), so a late vantage point never seen before
    is combined like in one run; a *restarted* merger combines such a vantage point only
    with bins some known vantage point has not passed (docs/distributed.md, "Probing
    fleet").
    """
    import time

    from netvigil.cli.common import open_store
    from netvigil.distributed.fleet import merge_rounds
    from netvigil.pipeline import Pipeline

    pipeline: Pipeline | None = None
    done = 0
    while True:
        with open_store(store_path) as store:
            if pipeline is None:
                pipeline = Pipeline(store)
            pipeline.store = store  # the aggregator's state lives on; the store is per pass
            got = merge_rounds(pipeline, root)
        done += 1
        click.echo(f"merged {got.rounds} round(s) from {len(got.vantages)} vantage point(s)"
                   f" {', '.join(got.vantages) or '-'}; {got.stale} already merged;"
                   f" {pipeline.stats.points} points written so far")
        if not follow or (passes is not None and done >= passes):
            return
        time.sleep(interval)


def register(group: click.Group) -> None:
    group.add_command(probe)
