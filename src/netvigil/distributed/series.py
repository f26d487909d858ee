"""``netvigil series import --engine dask``: files validated on workers, written in file order
by the driver in one transaction (issue 11).

What is per file and independent is the expensive part of a series import: the scan pass
(sha256, gunzip, UTF-8), DuckDB's CSV split and the SQL validation, the IODA JSON event
stream, the duplicate rules. What must stay serial is the store: one writer (DuckDB), and
a later file's points update an earlier file's, with per-file counts (inserted / updated /
unchanged) that depend on what the earlier files wrote.

So each worker runs the **unchanged single-process importer**
(:func:`netvigil.series.importers.import_file`: the same scan, parsers, rules of
:mod:`netvigil.series.rules`, error messages, skip reports) against a private in-memory
store, :class:`PartStore`, whose point writes are also recorded, in order, as Parquet parts
(one per store write, with its source, declared step and whether the importer proved its
keys unique), and whose entity upsert and imports row are recorded in the unit's manifest.
Nothing about validation is re-implemented here: a rule added to ``series/`` applies to both
engines at once.

The driver then opens the store, and inside ONE transaction, for each file in the order
given, replays that file's writes through :meth:`netvigil.pipeline.Pipeline.write_staged`
(:meth:`Store.write_staged_points`: the one upsert body ``write_points`` also uses), upserts
its entities and records its imports row with the counts the replay produced. The store
sees the same writes in the same order as ``series import`` of the same files in one
process, so points, series bookkeeping (step, origin, bounds), entities, imports rows and
the printed summaries are the same; under ``--on-error fail`` the first failing file in
the given order raises the single-process error and the transaction writes nothing. The
driver loads file *i* as soon as files 0..*i* are validated, so its serial part overlaps
the workers'.

Why not the hourly partitions of :mod:`netvigil.distributed.dataset` for the parts: a year
of 5-minute series is 8,760 hour partitions per file (as many files and ``COPY``
statements), and :func:`~netvigil.distributed.dataset.import_dataset` merges all parts of a
source into one write, which loses the file order and the per-file counts the imports row
carries. The unit manifests and done rule are the dataset module's
(:class:`~netvigil.distributed.dataset.DatasetWriter`), and so are the atomic writes.

Resume and faults: a unit is one file; its parts are written atomically (temporary file,
fsync, rename) under ``<work>/<unit>/`` and its manifest last, so a unit is done when its
manifest names only existing files (:meth:`DatasetWriter.done`), and a re-run of an
interrupted import validates only the files not done. A unit's name carries the digest of
the file's absolute path, size and mtime, the format and the policy: a changed file is
validated again. A task lost with a killed worker is rerun by Dask and rewrites the same
files. The work folder is removed once the store has the import.

Not done: splitting one big CSV into byte ranges (a file is the unit of work), so an import
of one file runs on one worker. It would pay: a 2,000,000-row long-format CSV (78 MB,
``benchmarks/bench_import.py``'s generator) takes 3.9 s to validate (``validate_file``,
in-process) and 1.0 s to load on the driver (``load_unit``). Why not yet: the importer's
rules are per file (a key repeated anywhere in the file, the first error's line under
``fail``, the file's sha256 in its imports row), so ranges need a driver pass across them
that restates those rules with the single process's messages, and a split inside a quoted
field must be ruled out; a gzipped file cannot be split at all.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import numpy.typing as npt

from netvigil.distributed.dataset import DatasetWriter, UnitManifest, _atomic_copy, _atomic_text
from netvigil.distributed.engine import Echo, report_progress, roomy_malloc, task_key
from netvigil.model import Entity, InputError, make_ref
from netvigil.pipeline import Pipeline
from netvigil.series.batch import SkipReport
from netvigil.series.importers import ImportSummary, import_budget, import_file
from netvigil.store import ImportRecord, WriteResult
from netvigil.store.duck import Store

if TYPE_CHECKING:
    from distributed import Client

#: the layout of a unit's manifest and parts: a unit an older NetVigil wrote is redone
UNIT_FORMAT = "v1"
#: the temporary view each replayed part is written from (a relation name for the store)
_PART_VIEW = "_series_part"


def _q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class PartStore(Store):
    """A worker's in-memory store that records every point write as a Parquet part.

    ``write_points`` (the IODA path's flushed batches) is recorded and also applied, because
    the IODA importer reads an earlier series' points back for its cross-series duplicate
    rule. ``write_staged_points`` (a validated CSV) is only recorded: the CSV importer
    checks duplicates in its own staging tables and never reads ``points``, and applying
    it would cost the worker a second write of the whole file for a store it discards.
    Entities and the imports row are kept for the manifest.

    One per worker thread (:func:`part_store`), migrated once and emptied per file: a
    fresh store's migrations cost 0.15-0.4 s here, more than validating a small file (the
    detection shards' cache, :mod:`netvigil.distributed.detect`, for the same reason).
    """

    def __init__(self) -> None:
        super().__init__(":memory:")
        con = self.connection
        # one DuckDB thread per Dask worker thread: DuckDB's default (one per core) lets
        # each worker compete for every core (measured for detection shards, docs/scaling.md)
        con.execute("SET threads = 1")
        # an in-memory database spills beyond the import's memory cap to temp_directory:
        # the worker's own disk, not its cwd nor the shared work folder
        spill = tempfile.mkdtemp(prefix="netvigil-series-spill-")
        atexit.register(shutil.rmtree, spill, True)
        con.execute(f"SET temp_directory = {_q(spill)}")
        self.tables = [str(r[0]) for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
            " AND schema_name = 'main'").fetchall()]
        self.begin(Path("."), "")

    def begin(self, root: Path, unit: str) -> None:
        """Empty for the next file (a pure function of the file, whatever ran before)."""
        self.root, self.unit = root, unit
        self.writes: list[dict[str, Any]] = []
        self.entities: list[Entity] = []
        self.record: ImportRecord | None = None
        for table in self.tables:
            self.connection.execute(f"DELETE FROM {table}")

    def _part(self) -> tuple[Path, str]:
        rel = f"{self.unit}/write-{len(self.writes):05d}.parquet"
        return self.root / rel, rel

    def _note(self, rel: str, rows: int, source: str, step: int | None,
              unique: bool) -> None:
        self.writes.append({"file": rel, "rows": rows, "source": source, "step": step,
                            "unique": unique})

    def write_points(self, entity_types: Sequence[str], entity_codes: Sequence[str],
                     signals: Sequence[str], times: npt.NDArray[np.int64],
                     values: npt.NDArray[np.float64], *, source: str,
                     step: int | None = None) -> WriteResult:
        n = len(times)
        if n:
            target, rel = self._part()
            con = duckdb.connect()
            try:
                con.register("_w", {
                    "entity_type": np.asarray(entity_types, dtype=object),
                    "entity_code": np.asarray(entity_codes, dtype=object),
                    "signal": np.asarray(signals, dtype=object),
                    "time": np.ascontiguousarray(times, dtype=np.int64),
                    "value": np.ascontiguousarray(values, dtype=np.float64),
                    "idx": np.arange(n, dtype=np.int64)})
                _atomic_copy(con, "SELECT * FROM _w", target, [])
            finally:
                con.close()
            self._note(rel, n, source, step, unique=False)  # as Store.write_points: unproved
        return super().write_points(entity_types, entity_codes, signals, times, values,
                                    source=source, step=step)

    def write_staged_points(self, relation: str, *, source: str, step: int | None = None,
                            unique_keys: bool = False) -> WriteResult:
        if not relation.isidentifier():
            raise ValueError(f"write_staged_points: not a relation name: {relation!r}")
        row = self.connection.execute(f"SELECT count(*) FROM {relation}").fetchone()
        n = int(row[0]) if row else 0
        if n:
            target, rel = self._part()
            _atomic_copy(self.connection, "SELECT entity_type, entity_code, signal, time,"
                         f" value, idx FROM {relation}", target, [])
            self._note(rel, n, source, step, unique_keys)
        return WriteResult(n, 0, 0)  # not applied (class docstring); the driver counts

    def upsert_entities(self, entities: Sequence[Entity]) -> int:
        self.entities.extend(entities)
        return super().upsert_entities(entities)

    def record_import(self, rec: ImportRecord) -> int:
        self.record = rec
        return super().record_import(rec)


_LOCAL = threading.local()


def part_store(root: Path, unit: str) -> PartStore:
    """This worker thread's :class:`PartStore`, emptied for ``unit``."""
    store: PartStore | None = getattr(_LOCAL, "store", None)
    if store is None:
        store = _LOCAL.store = PartStore()
    store.begin(root, unit)
    return store


def _entity_row(e: Entity) -> list[str | None]:
    p = e.parent
    return [e.ref.type.value, e.ref.code, e.name, p.type.value if p else None,
            p.code if p else None]


def _entity(row: list[str | None]) -> Entity:
    et, code, name, pt, pc = row
    assert et is not None and code is not None
    return Entity(make_ref(et, code), name or "",
                  make_ref(pt, pc) if pt is not None and pc is not None else None)


def validate_file(path: str, fmt: str | None, policy: str, root: str,
                  unit: str) -> dict[str, Any] | None:
    """On a worker: import ``path`` into a :class:`PartStore` with the single-process
    importer and write the unit (parts, then manifest). Returns None, or under ``fail`` the
    file's error as ``{path, line, reason}`` (an ``InputError`` takes three arguments and
    would not survive the trip back); nothing of a failed unit is marked done."""
    base = Path(root)
    writer = DatasetWriter(base)
    old = writer.manifest(unit)
    writer.manifest_path(unit).unlink(missing_ok=True)  # not done while rewriting
    store = part_store(base, unit)
    try:
        with roomy_malloc():  # the parsers' columns: fresh pages each under Dask's nanny
            summary = import_file(store, path, fmt, policy, sink=Pipeline(store))
    except InputError as exc:
        return {"path": exc.path, "line": exc.line, "reason": exc.reason}
    rec = store.record
    assert rec is not None
    files = {w["file"]: int(w["rows"]) for w in store.writes}
    if old is not None:  # parts of an earlier run of this unit that this run did not make
        for stale in set(old.files) - set(files):
            (base / stale).unlink(missing_ok=True)
    meta = {
        "format": summary.format, "sha256": rec.sha256, "rows_read": summary.rows_read,
        "accepted": summary.accepted, "skipped": summary.skipped,
        "skip_counts": summary.skip_report.counts,
        "skip_examples": summary.skip_report.examples,
        "series_touched": summary.series_touched,
        "source_names": list(summary.source_names), "writes": store.writes,
        "entities": [_entity_row(e) for e in store.entities],
    }
    _atomic_text(writer.manifest_path(unit), json.dumps(
        {"unit": unit, "files": files, "meta": meta}, sort_keys=True))
    return None


def _size_mtime(path: Path) -> tuple[int, int]:
    """(size, mtime) of ``path``, (0, 0) when it cannot be read: the worker's importer then
    raises the single-process error for it (``cannot read file: ...``, exit status 1)."""
    try:
        st = path.stat()
    except OSError:
        return 0, 0
    return st.st_size, st.st_mtime_ns


def unit_name(index: int, path: Path, fmt: str | None, policy: str) -> str:
    """Position and digest of the file (absolute path, size, mtime), format and policy."""
    size, mtime = _size_mtime(path)
    ident = f"{UNIT_FORMAT}\t{path.absolute()}\t{size}\t{mtime}\t{fmt}\t{policy}"
    return f"file-{index:06d}-{hashlib.sha256(ident.encode()).hexdigest()[:16]}"


def work_dir(base: Path, paths: Sequence[Path], fmt: str | None, policy: str) -> Path:
    """One folder per (file list, format, policy): a re-run of the same import finds its
    units."""
    text = "\n".join(str(p.absolute()) for p in paths) + f"\n{fmt}\n{policy}"
    return base / f"series-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


@dataclass(frozen=True)
class DaskSeriesImport:
    """Per-file summaries (in the order given) and how many files were already validated."""

    summaries: list[ImportSummary]
    resumed: int


def _stats(sink: Pipeline) -> WriteResult:
    s = sink.stats
    return WriteResult(s.inserted, s.updated, s.unchanged)


def load_unit(store: Store, sink: Pipeline, root: Path, man: UnitManifest,
              given: str) -> ImportSummary:
    """One validated file into ``store`` (inside the caller's transaction): its writes
    replayed in order, its entities, its imports row, as ``import_file`` does them."""
    meta: dict[str, Any] = dict(man.meta)
    con = store.connection
    before = _stats(sink)
    for w in meta["writes"]:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {_PART_VIEW} AS SELECT entity_type,"
                    " entity_code, signal, time, value, idx FROM"
                    f" read_parquet({_q((root / w['file']).as_posix())})")
        sink.write_staged(_PART_VIEW, source=w["source"], step=w["step"],
                          unique_keys=bool(w["unique"]))
    con.execute(f"DROP VIEW IF EXISTS {_PART_VIEW}")
    store.upsert_entities([_entity(r) for r in meta["entities"]])
    after = _stats(sink)
    result = WriteResult(after.inserted - before.inserted, after.updated - before.updated,
                         after.unchanged - before.unchanged)
    fmt, rows_read = str(meta["format"]), int(meta["rows_read"])
    accepted, skipped = int(meta["accepted"]), int(meta["skipped"])
    sources = tuple(str(s) for s in meta["source_names"])
    store.record_import(ImportRecord(
        file_name=given, sha256=str(meta["sha256"]), format=fmt, rows_read=rows_read,
        rows_written=accepted, rows_skipped=skipped, inserted=result.inserted,
        updated=result.updated, unchanged=result.unchanged, source_names=sources))
    report = SkipReport(dict(meta["skip_counts"]),
                        {k: list(v) for k, v in meta["skip_examples"].items()})
    return ImportSummary(given, fmt, rows_read, accepted, result, skipped, report,
                         int(meta["series_touched"]), sources)


@contextmanager
def _cancel_on_exit(futures: dict[str, Any]) -> Iterator[None]:
    try:
        yield
    except BaseException:
        for f in futures.values():
            f.cancel()
        raise


def import_files_dask(client: Client, store: Store, paths: Sequence[Path], fmt: str | None,
                      policy: str, work: Path, *, sink: Pipeline,
                      progress: Echo = None) -> DaskSeriesImport:
    """Validate ``paths`` on the workers (files not done yet), load them in order into
    ``store`` through ``sink`` in one transaction (module docstring). Raises the first
    failing file's ``InputError`` (in the order given) and writes nothing. ``progress``
    gets a line as files are validated (:func:`~netvigil.distributed.engine.
    report_progress`)."""
    work.mkdir(parents=True, exist_ok=True)
    writer = DatasetWriter(work)
    units = [unit_name(i, p, fmt, policy) for i, p in enumerate(paths)]
    # workers get absolute paths (a worker on another host does not share this process's
    # working directory); summaries, rows and errors name the paths as given
    given = {str(p.absolute()): str(p) for p in paths}
    root = str(work.absolute())
    # in the order given (Dask runs higher priorities first): the driver loads in that
    # order, so its serial write of file i overlaps the validation of the next ones. Biggest
    # first (the OONI chunks' rule) let a 1-worker run validate the files in an arbitrary
    # order when their sizes were alike, and the driver waited for file 0 until the end
    futures = {u: client.submit(validate_file, str(p.absolute()), fmt, policy, root, u,
                                key=task_key(f"series-{u}-{work.name}"), pure=False,
                                priority=len(paths) - i)
               for i, (u, p) in enumerate(zip(units, paths, strict=True))
               if not writer.done(u)}
    report_progress(list(futures.values()), "series files validated", progress,
                    resumed=len(paths) - len(futures))
    summaries = []
    with _cancel_on_exit(futures), import_budget(store.connection), store.transaction():
        for u, p in zip(units, paths, strict=True):
            if u in futures:
                error = futures[u].result()  # a worker's exception is raised here
                if error is not None:
                    raise InputError(given.get(error["path"], error["path"]), error["line"],
                                     error["reason"])
            man = writer.manifest(u)
            if man is None or not writer.done(u):
                raise InputError(str(p), None, f"validated unit {u} is missing from {work}")
            summaries.append(load_unit(store, sink, work, man, str(p)))
    return DaskSeriesImport(summaries, len(paths) - len(futures))
