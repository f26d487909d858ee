"""``netvigil bgp``: read MRT files, measure visibility, ingest archives into the store."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from netvigil.cli.common import handle_errors, iso_utc, render_table, store_option
from netvigil.model.errors import NetVigilError
from netvigil.sources.bgp.ingest import IngestReport
from netvigil.sources.bgp.mrt import ErrorPolicy, MrtReader, to_json, to_psv
from netvigil.sources.bgp.visibility import VisibilityConfig

_POLICY = click.option(
    "--on-error", "on_error", type=click.Choice([p.value for p in ErrorPolicy]),
    default=ErrorPolicy.SKIP.value, show_default=True,
    help="skip: drop and count undecodable records; fail: stop at the first, with its offset.",
)


def _thresholds(func: click.decorators.FC) -> click.decorators.FC:
    func = click.option("--fraction", type=float, default=0.5, show_default=True,
                        help="A unit is visible when MORE than this share of full-feed peers "
                             "cover it.")(func)
    func = click.option("--full-feed", "full_feed", type=click.Choice(sorted(_RULE_SETS)),
                        default="era", show_default=True,
                        help="Full-feed rule: era = at least 80% of the largest table at that "
                             "instant (floor 20k IPv4 / 100 IPv6); ioda = IODA's fixed "
                             ">400k IPv4 / >10k IPv6.")(func)
    func = click.option("--ff-v6", type=int, default=None,
                        help="Override: full-feed = more than this many IPv6 prefixes.")(func)
    func = click.option("--ff-v4", type=int, default=None,
                        help="Override: full-feed = more than this many IPv4 prefixes.")(func)
    return func


_RULE_SETS = {"era": ("ff-v4-era", "ff-v6-era"), "ioda": ("ioda-ff-v4", "ioda-ff-v6")}


def _config(ff_v4: int | None, ff_v6: int | None, full_feed: str,
            fraction: float) -> VisibilityConfig:
    r4, r6 = _RULE_SETS[full_feed]
    return VisibilityConfig(ff_v4=ff_v4, ff_v6=ff_v6, fraction=fraction, ff_rule_v4=r4,
                            ff_rule_v6=r6)


def _no_full_feed(rep: IngestReport, config: VisibilityConfig) -> NetVigilError:
    r4, r6 = config.rule(4), config.rule(6)
    return NetVigilError(
        f"no full-feed peer in any of {rep.bins} bin(s), so no series were written: rule "
        f"{r4.id} needs more than {rep.threshold_v4} IPv4 prefixes (largest table "
        f"{rep.largest_v4}), rule {r6.id} more than {rep.threshold_v6} IPv6 prefixes (largest "
        f"{rep.largest_v6}); see --full-feed / --ff-v4 / --ff-v6")


def register(group: click.Group) -> None:
    group.add_command(bgp)


@click.group()
def bgp() -> None:
    """BGP signal: MRT archives (RIS, RouteViews) to visible-/24 series."""


@bgp.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["psv", "json"]), default="psv",
              show_default=True, help="psv: bgpdump -m lines; json: one object per element.")
@_POLICY
@handle_errors
def elems(file: Path, fmt: str, on_error: str) -> None:
    """Print every element (announcement, withdrawal, RIB entry, state change) of FILE."""
    reader = MrtReader(file, on_error)
    render = to_psv if fmt == "psv" else to_json
    out = sys.stdout
    write = out.write
    batch: list[str] = []
    for e in reader:
        batch.append(render(e))
        if len(batch) >= 4096:
            write("\n".join(batch) + "\n")
            batch = []
    if batch:
        write("\n".join(batch) + "\n")
    out.flush()
    st = reader.stats
    if not st.ok:
        first = st.problems[0] if st.problems else None
        click.echo(
            f"warning: {file}: {st.skipped} record(s) skipped, {st.truncated} truncated"
            + (f"; first at byte {first[0]}: {first[2]}" if first else ""),
            err=True,
        )


@bgp.command()
@click.argument("rib", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_thresholds
@click.option("--top", type=int, default=10, show_default=True)
@_POLICY
@handle_errors
def visibility(rib: Path, ff_v4: int | None, ff_v6: int | None, full_feed: str,
               fraction: float, top: int, on_error: str) -> None:
    """Visible /24s and /48s of one RIB, with the top countries and origin ASes."""
    import numpy as np

    from netvigil.geo import GeoLookup
    from netvigil.sources.bgp.fastrib import read_rib_columns
    from netvigil.sources.bgp.visibility import RoutingState

    cols = read_rib_columns(rib, on_error)
    config = _config(ff_v4, ff_v6, full_feed, fraction)
    state = RoutingState(config)
    state.load_rib("collector", cols)
    snap = state.snapshot(cols.timestamp)
    click.echo(f"RIB {rib.name} at {iso_utc(cols.timestamp)}: {len(cols)} routes, "
               f"{len(cols.peer_ips)} peers; full-feed v4 {snap.full_feed_v4} "
               f"({config.rule(4).id}: > {snap.threshold_v4}, largest {snap.largest_v4}), "
               f"v6 {snap.full_feed_v6} ({config.rule(6).id}: > {snap.threshold_v6}, "
               f"largest {snap.largest_v6})")
    click.echo(f"visible /24s {snap.visible_v4}   visible /48s {snap.visible_v6}")
    if snap.v4_blocks.size:
        loc = GeoLookup.default().bulk_blocks(snap.v4_blocks, cols.timestamp)
        ci = loc.country_idx.astype(np.int64)
        bc = np.bincount(ci[ci >= 0], minlength=len(loc.countries))
        rows = sorted(((loc.countries[i], int(bc[i])) for i in np.flatnonzero(bc)),
                      key=lambda r: -r[1])[:top]
        click.echo(render_table(["country", "visible /24s"], rows))
        asns, n = np.unique(snap.v4_origin, return_counts=True)
        rows2 = sorted(zip(asns.tolist(), n.tolist(), strict=True), key=lambda r: -r[1])[:top]
        click.echo(render_table(["origin AS", "visible /24s"], rows2))
    if not cols.stats.ok:
        click.echo(f"warning: {cols.stats.skipped} skipped, {cols.stats.truncated} truncated",
                   err=True)


@bgp.command()
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dir", "directory", type=click.Path(exists=True, file_okay=False,
                                                   path_type=Path),
              help="Ingest every file under this directory (collector = rrcNN/route-views* "
                   "directory names).")
@click.option("--collector", default=None, help="Collector name for all FILES.")
@_thresholds
@_POLICY
@click.option("--engine", type=click.Choice(["local", "dask"]), default="local",
              show_default=True, help="dask: RIB epochs on Dask workers, facts into the one "
                                      "pipeline in time order (docs/distributed.md).")
@click.option("--scheduler", default="local:2", show_default=True,
              help="With --engine dask: local:N worker processes, ssh:SCHEDULER,WORKER[,...]"
                   " (Dask's SSHCluster, for this command) or a scheduler address.")
@store_option
@handle_errors
def ingest(files: tuple[Path, ...], directory: Path | None, collector: str | None,
           ff_v4: int | None, ff_v6: int | None, full_feed: str, fraction: float,
           on_error: str, engine: str, scheduler: str, store_path: Path) -> None:
    """Ingest RIB + update archives in time order into the store (resumable).

    Exits 1 when no bin had a full-feed peer (nothing could be measured).
    """
    from netvigil.geo import GeoLookup
    from netvigil.pipeline import Pipeline
    from netvigil.sources.bgp.ingest import BgpIngester, discover
    from netvigil.store.duck import Store

    if not files and directory is None:
        raise click.UsageError("give FILES or --dir")
    archives = discover(list(files), directory, collector)
    config = _config(ff_v4, ff_v6, full_feed, fraction)
    store_path.parent.mkdir(parents=True, exist_ok=True)
    if engine == "dask":
        from netvigil.distributed.bgp import ingest_dask_cli

        ingest_dask_cli(archives, config, ErrorPolicy(on_error), scheduler, store_path)
        return
    with Store(store_path) as store:
        pipeline = Pipeline(store, GeoLookup.default())
        ing = BgpIngester(pipeline, config=config, policy=ErrorPolicy(on_error),
                          progress=lambda m: click.echo(m, err=True))
        rep = ing.run(archives)
    click.echo(f"files {rep.files} (already done {rep.skipped_done}), elements {rep.elements}, "
               f"bins {rep.bins}, full-feed peers v4 {rep.full_feed_v4} v6 {rep.full_feed_v6} "
               f"(last bin), points written {pipeline.stats.points}")
    for p in rep.problems:
        click.echo(f"warning: {p}", err=True)
    for coll, spans in rep.silent.items():
        click.echo(f"source health: {coll} silent in {len(spans)} span(s), first "
                   f"{iso_utc(spans[0][0])}..{iso_utc(spans[0][1])}", err=True)
    if rep.bins_without_full_feed and not rep.no_full_feed:
        click.echo(f"warning: {rep.bins_without_full_feed} of {rep.bins} bin(s) had no "
                   "full-feed peer (missing, not zero)", err=True)
    if rep.no_full_feed:
        raise _no_full_feed(rep, config)


@bgp.command()
@click.option("--url", default="wss://ris-live.ripe.net/v1/ws/", show_default=True,
              help="RIS Live websocket endpoint.")
@click.option("--host", default=None, help="Collector to subscribe to (e.g. rrc00); default all.")
@click.option("--prefix", "prefixes", multiple=True,
              help="Only UPDATEs for this prefix and more-specifics (repeatable).")
@click.option("--duration", type=float, default=None,
              help="Stop after this many seconds (default: run until interrupted).")
@click.option("--rib", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Seed the routing state with this RIB (collector = --host).")
@_thresholds
@_POLICY
@store_option
@handle_errors
def live(url: str, host: str | None, prefixes: tuple[str, ...], duration: float | None,
         rib: Path | None, ff_v4: int | None, ff_v6: int | None, full_feed: str,
         fraction: float, on_error: str, store_path: Path) -> None:
    """Stream RIS Live UPDATEs into the store's bgp series (reconnects and resumes)."""
    import asyncio

    from netvigil.sources.bgp.rislive import (
        LiveIngester,
        LiveStats,
        RisLiveClient,
        RisLiveParams,
    )
    from netvigil.store.duck import Store

    if rib is not None and host is None:
        raise click.UsageError("--rib needs --host (the collector the RIB belongs to)")
    from netvigil.geo import GeoLookup
    from netvigil.pipeline import Pipeline

    config = _config(ff_v4, ff_v6, full_feed, fraction)
    store_path.parent.mkdir(parents=True, exist_ok=True)
    stats = LiveStats()
    with Store(store_path) as store:
        pipeline = Pipeline(store, GeoLookup.default())
        sink = LiveIngester(pipeline, config=config, stats=stats)
        if rib is not None and host is not None:
            from netvigil.sources.bgp.fastrib import read_rib_columns

            sink.state.load_rib(host, read_rib_columns(rib, on_error))
        client = RisLiveClient(url, RisLiveParams(host=host, prefixes=prefixes), sink.feed,
                               policy=ErrorPolicy(on_error), stats=stats)
        try:
            asyncio.run(client.run(duration))
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
        finally:
            sink.close()
    click.echo(f"messages {stats.messages}, elements {stats.elements}, duplicates dropped "
               f"{stats.duplicates}, malformed {stats.malformed}, reconnects "
               f"{len(stats.reconnects)}, bins {sink.report.bins}, points "
               f"{pipeline.stats.points}")
    for g in stats.gaps:
        click.echo(f"source health: gap {g['start']}..{g['end']} (replayed overlap "
                   f"{g['overlap']})", err=True)
    for msg in stats.server_errors[:5]:
        click.echo(f"warning: RIS Live error: {msg}", err=True)
    if sink.report.no_full_feed:
        raise _no_full_feed(sink.report, config)
