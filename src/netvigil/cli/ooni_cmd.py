"""``netvigil ooni import`` and ``netvigil tor import``: platform and circumvention evidence.

Both read their files completely before the store is opened (no lock held while parsing),
then write every point, the entities and one ``imports`` row per file in ONE store
transaction through the pipeline (OONI: with the accepted measurements' ledger rows, the
series of the hours they touch derived from every stored measurement of those hours,
:mod:`netvigil.sources.ooni.ledger`): with ``--on-error fail`` a malformed record writes
nothing; with ``skip`` the good records are written and the malformed ones counted by
reason with their first ``file:line`` (stderr). See docs/ooni.md.
"""

from __future__ import annotations

import gc
import hashlib
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import click

from netvigil.cli.common import handle_errors, open_store, store_option
from netvigil.geo.entities import default_registry
from netvigil.model import Entity, EntityRef, EntityType, ErrorPolicy
from netvigil.pipeline import Pipeline
from netvigil.sources.ooni.facts import SOURCE, FactBuilder
from netvigil.sources.ooni.importer import OoniImport, read_measurements
from netvigil.sources.ooni.ledger import Accepted, accept
from netvigil.sources.ooni.reader import bucket_files, expand
from netvigil.sources.ooni.tor_userstats import TorImport, parse_userstats
from netvigil.store import ImportRecord, Store
from netvigil.store.ooni_ledger import OoniLedger, reassess_platform_blocks

POLICIES = [p.value for p in ErrorPolicy]


def _on_error_option(func: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--on-error", type=click.Choice(POLICIES), default="fail", show_default=True,
        help="fail: write nothing at the first malformed record; "
             "skip: write the rest, count the malformed ones.")(func)


def _countries(codes: Iterable[str]) -> list[Entity]:
    reg = default_registry()
    return [Entity(ref, known.name if (known := reg.get(ref)) else "")
            for ref in sorted({EntityRef(EntityType.COUNTRY, c) for c in codes})]


def _write(store: Store, pipeline: Pipeline, record: ImportRecord,
           entities: list[Entity]) -> None:
    """Points, entities and the imports row: one transaction (the pipeline's joins it)."""
    before = (pipeline.stats.inserted, pipeline.stats.updated, pipeline.stats.unchanged)
    with store.transaction():
        pipeline.flush()
        store.upsert_entities(entities)
        s = pipeline.stats
        store.record_import(replace(record, inserted=s.inserted - before[0],
                                    updated=s.updated - before[1],
                                    unchanged=s.unchanged - before[2]))


def _record(label: str, fmt: str, files: Sequence[tuple[str, str]], rows_read: int,
            written: int, skipped: int) -> ImportRecord:
    """ONE imports row per invocation: a bucket holds thousands of files and a row costs
    ~18 ms in DuckDB (measured: 797 rows = 14 s of a 23 s import). One file keeps its own
    name and sha256; several are named ``label`` (the folder or ``first (+N more)``) with the
    sha256 of their sorted ``sha256  path`` lines (a manifest digest, like ``sha256sum``)."""
    if len(files) == 1:
        name, sha = files[0]
    else:
        manifest = "".join(f"{h}  {p}\n" for p, h in sorted(files))
        name, sha = label, hashlib.sha256(manifest.encode()).hexdigest()
    return ImportRecord(name, sha, fmt, rows_read, written, skipped, 0, 0, 0)


@click.group("ooni")
def ooni_group() -> None:
    """OONI measurements: platform blocking, throttling and measurement volume."""


@ooni_group.command("import")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@click.option("--dir", "bucket", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="A folder in OONI's bucket layout "
                                 "(raw/YYYYMMDD/HH/CC/testname/*.jsonl.gz).")
@_on_error_option
@click.option("--engine", type=click.Choice(["local", "dask"]), default="local",
              show_default=True, help="dask: files read on Dask workers in chunks, merged "
                                      "in order; a re-run resumes (docs/distributed.md).")
@click.option("--scheduler", default="local:2", show_default=True,
              help="With --engine dask: local:N worker processes, ssh:SCHEDULER,WORKER[,...]"
                   " (Dask's SSHCluster, for this command) or a scheduler address.")
@click.option("--chunk-files", type=click.IntRange(min=1), default=64, show_default=True,
              help="With --engine dask: files per task.")
@click.option("--jobs", type=click.IntRange(min=0), default=0, show_default=True,
              help="With --engine local: worker processes judging files (0: one per core "
                   "not already busy, by the 1-minute load average; 1: all in this process).")
@store_option
@handle_errors
def import_cmd(files: tuple[Path, ...], bucket: Path | None, on_error: str, engine: str,
               scheduler: str, chunk_files: int, jobs: int, store_path: Path) -> None:
    """Import raw OONI measurements (JSON, JSONL, .gz; one per line or one per file)."""
    with _frozen_heap():
        _import(files, bucket, on_error, engine, scheduler, chunk_files, jobs, store_path)


@contextmanager
def _frozen_heap() -> Iterator[None]:
    """``gc.freeze()`` for the import's duration: the objects that exist before it (every
    loaded module's: ~45,000 tracked objects after the CLI's imports) leave the collector's
    generations, so the full collections that 40,000 parsed measurements trigger stop
    walking them (and forked workers do not dirty their pages). Measured on the
    40k-measurement bench bucket, ``--jobs 1``, load 7-11: 3.03 -> 2.80 CPU s (best of 3).
    Undone after (a test process invokes the CLI many times)."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _import(files: tuple[Path, ...], bucket: Path | None, on_error: str, engine: str,
            scheduler: str, chunk_files: int, jobs: int, store_path: Path) -> None:
    in_bucket = bucket_files(bucket) if bucket is not None else []
    paths = expand(files) + in_bucket
    if not paths:
        raise click.UsageError("give measurement FILE(s) or --dir FOLDER")
    work = None
    if engine == "dask":
        from netvigil.distributed.engine import dask_client
        from netvigil.distributed.ooni import read_measurements_dask, work_dir

        work = work_dir(store_path.parent / f".{store_path.name}.work", paths, on_error)
        with dask_client(scheduler) as client:
            builder, result, resumed = read_measurements_dask(
                client, paths, on_error, work, per_chunk=chunk_files,
                progress=lambda line: click.echo(line, err=True))
        click.echo(f"dask: {resumed} chunk(s) already read (resumed)", err=True)
    else:
        builder = FactBuilder()
        result = read_measurements(paths, on_error, builder, jobs=jobs or idle_cores())
    with open_store(store_path) as store:
        pipeline = Pipeline(store)
        label = (str(bucket) if bucket is not None and not files
                 else f"{paths[0]} (+{len(paths) - 1} more)")
        record = _record(label, "ooni",
                         [(f.path, f.sha256) for f in result.files],
                         sum(f.records for f in result.files), result.measurements,
                         result.malformed.total)
        with store.transaction():  # ledger rows and the points derived from them: together
            accepted = accept(OoniLedger(store), builder.ledger_rows(), pipeline, SOURCE,
                              cells=builder)
            result.facts = accepted.facts
            _write(store, pipeline, record, _ooni_entities(builder))
        points = pipeline.stats.points
    if work is not None:  # the store has the import: its chunks are no longer needed
        shutil.rmtree(work, ignore_errors=True)
    _report(result, points, accepted)


def idle_cores() -> int:
    """Cores this process may use minus the 1-minute load average, at least 1 (the rule of
    GNU make's ``--load-average``): on a busy machine workers only add the cost of handing
    results back (measured at load 10-15 on 2 cores: +20-30 % CPU, no shorter wall time)."""
    return max(1, len(os.sched_getaffinity(0)) - round(os.getloadavg()[0]))


def _ooni_entities(builder: FactBuilder) -> list[Entity]:
    """Countries named from the registry; ASes by the probes' ``probe_network_name`` with
    the country they were measured in as parent (loading the 77k AS names for a few ASes
    would cost more than the import)."""
    out = _countries(cc for cc, _asn in builder.volume)
    out += [Entity(EntityRef(EntityType.ASN, str(asn)), name,
                   EntityRef(EntityType.COUNTRY, cc))
            for asn, (name, cc) in sorted(builder.networks.items())]
    return out


def _report(result: OoniImport, points: int, accepted: Accepted) -> None:
    click.echo(f"{result.text()}, {points} points written; {accepted.new} new to the store, "
               f"{accepted.known} stored before, {accepted.hours} hour(s) derived again")
    for name, n in sorted(result.by_test.items()):
        click.echo(f"  {name}: {n}")
    if result.malformed.total:
        click.echo(f"flagged {result.malformed.total} malformed record(s) by reason:",
                   err=True)
        for line in result.malformed.lines():
            click.echo(line, err=True)


@click.group("tor")
def tor_group() -> None:
    """Tor Metrics: circumvention demand per country."""


@tor_group.command("import")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(dir_okay=False, path_type=Path))
@_on_error_option
@store_option
@handle_errors
def tor_import_cmd(files: tuple[Path, ...], on_error: str, store_path: Path) -> None:
    """Import userstats-relay-country / userstats-bridge-country CSV files (.gz accepted):
    series tor-users / tor-bridge-users per country, daily."""
    parsed: list[TorImport] = [parse_userstats(f, on_error) for f in files]
    with open_store(store_path) as store:
        pipeline = Pipeline(store)
        codes = {str(c) for t in parsed for c in t.batch.entity_codes.tolist()}
        with store.transaction():
            for t in parsed:  # one row per file: Tor Metrics files are few and large
                pipeline.emit(t.batch)
                _write(store, pipeline, _record(t.path, "tor-userstats",
                                                [(t.path, _sha256(Path(t.path)))],
                                                t.rows_read, len(t.batch), t.skipped),
                       _countries(codes))
            # Tor data landing after a block's events: its ASes' events are rebuilt by the
            # next detect, so they name the surge too (the country's already are)
            changed = pipeline.stats.inserted + pipeline.stats.updated > 0
            marked = reassess_platform_blocks(store, sorted(codes)) if changed else []
    for t in parsed:
        click.echo(t.text())
    if marked:
        click.echo(f"platform-block events of {len(marked)} AS(es) ({', '.join(marked)}) "
                   "will be assessed again by the next detect")
        for cat, n in sorted(t.malformed.items()):
            lines = ", ".join(str(x) for x in t.examples.get(cat, []))
            click.echo(f"  {cat}: {n} (first at line {lines})", err=True)


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def register(group: click.Group) -> None:
    group.add_command(ooni_group)
    group.add_command(tor_group)
