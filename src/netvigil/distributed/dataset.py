"""Partitioned point datasets: the format workers write and the store reads (issue 11, item 1).

Why a dataset between workers and the store: DuckDB admits one writer process per file and no
other process may open the file while it writes, so workers never touch the store. They write
**point partitions** (the pipeline's own output, after its aggregators) as Parquet files, and
the driver loads them through :meth:`netvigil.pipeline.Pipeline.write_staged`, the same store
upsert every emitted batch takes. The single-machine path can take the same route
(``netvigil store import-parquet DIR``), so both paths share one format.

Layout (hive style, one directory level per key)::

    ROOT/source=<quoted source>/date=YYYY-MM-DD/hour=HH/part-<unit>.parquet
    ROOT/_units/<unit>.json          # the unit's manifest: written last = unit done

``source`` is URL-quoted (sources such as ``csv:kz.csv`` or ``import:a/b`` contain ``:`` and
``/``); date and hour are UTC of the point time. Columns: ``entity_type, entity_code, signal,
time, value`` (NULL = missing), ``step`` (the batch's declared step, NULL = let the store
infer) and ``idx`` (row order inside the unit: among repeated keys the last one wins, as in
:meth:`Store.write_points`).

A **unit** is one piece of work (a chunk of files, a shard): it owns the ``part-<unit>`` file
of every partition it touches. Writes are atomic (a temporary file in the partition
directory, fsync, ``os.replace``) and idempotent (re-running a unit rewrites exactly the same
files; parts a previous run of the unit wrote and this one does not are removed). The unit's
manifest is written after all its parts: a unit with a manifest whose files all exist is
**done**, and a resumed job skips it (:meth:`DatasetWriter.done`).

Several units may write the same partition (a BGP hour from two shards, two chunks of one
OONI hour); the loader orders rows by (part file name, idx), so with repeated keys the unit
whose name sorts last wins — units of one job must not repeat keys unless that is intended.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, cast
from urllib.parse import quote, unquote

import duckdb
import numpy as np

from netvigil.model.errors import InputError
from netvigil.model.facts import PointBatch
from netvigil.pipeline import Pipeline

if TYPE_CHECKING:
    from netvigil.geo.lookup import GeoLookup
    from netvigil.pipeline.probing import ProbingOptions
    from netvigil.store.duck import Store

UNITS_DIR = "_units"
_UNIT_RE = re.compile(r"^[A-Za-z0-9._=-]{1,200}$")
_PART_RE = re.compile(
    r"^source=(?P<source>[^/]+)/date=(?P<date>\d{4}-\d{2}-\d{2})/hour=(?P<hour>\d{2})/"
    r"part-(?P<unit>[A-Za-z0-9._=-]+)\.parquet$")
_NO_STEP = -1  # step column sentinel in the numpy staging (NULL in the file)


def partition_dir(root: Path, source: str, hour_start: int) -> Path:
    """``ROOT/source=S/date=D/hour=H`` of the hour starting at ``hour_start`` (unix s)."""
    when = datetime.fromtimestamp(hour_start, UTC)
    return (root / f"source={quote(source, safe='')}" / f"date={when:%Y-%m-%d}"
            / f"hour={when:%H}")


def check_unit(unit: str) -> str:
    if not _UNIT_RE.match(unit):
        raise ValueError(f"unit name {unit!r}: letters, digits and ._=- only (≤ 200)")
    return unit


def _atomic_copy(con: duckdb.DuckDBPyConnection, select: str, target: Path,
                 params: list[object]) -> None:
    """``COPY (select) TO target`` through a temporary file in the same directory, fsynced,
    then renamed: readers see the old file or the new one, never a part."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    quoted = str(tmp).replace("'", "''")
    try:
        con.execute(f"COPY ({select}) TO '{quoted}' (FORMAT parquet)", params)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _atomic_text(target: Path, text: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class UnitManifest:
    """What a finished unit wrote: part files relative to the root, and rows per file."""

    unit: str
    files: dict[str, int]
    meta: dict[str, object] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(self.files.values())


class DatasetWriter:
    """Writes the point batches of units into a dataset root (module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def manifest_path(self, unit: str) -> Path:
        return self.root / UNITS_DIR / f"{check_unit(unit)}.json"

    def manifest(self, unit: str) -> UnitManifest | None:
        path = self.manifest_path(unit)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise InputError(str(path), None, f"unreadable unit manifest: {exc}") from exc
        return UnitManifest(doc["unit"], {str(k): int(v) for k, v in doc["files"].items()},
                            dict(doc.get("meta", {})))

    def done(self, unit: str) -> bool:
        """A unit is done when its manifest exists and names only files that exist."""
        man = self.manifest(unit)
        return man is not None and all((self.root / f).is_file() for f in man.files)

    def write_unit(self, unit: str, batches: Iterable[PointBatch],
                   meta: Mapping[str, object] | None = None) -> UnitManifest:
        """Write every partition the batches touch, then the manifest (atomic, idempotent)."""
        check_unit(unit)
        old = self.manifest(unit)
        self.manifest_path(unit).unlink(missing_ok=True)  # not done while rewriting
        cols = _columns([b for b in batches if len(b)])
        files: dict[str, int] = {}
        if cols is not None:
            con = duckdb.connect()
            try:
                con.register("_b", cols)
                con.execute(
                    "CREATE TEMP TABLE _p AS SELECT source, hour, entity_type, entity_code,"
                    " signal, time, CASE WHEN isnan(value) THEN NULL ELSE value END AS value,"
                    " nullif(step, -1) AS step, idx FROM _b")
                con.unregister("_b")
                groups = con.execute(
                    "SELECT DISTINCT source, hour FROM _p ORDER BY ALL").fetchall()
                for source, hour in groups:
                    target = partition_dir(self.root, str(source), int(hour)) / \
                        f"part-{unit}.parquet"
                    _atomic_copy(con, "SELECT entity_type, entity_code, signal, time, value,"
                                      " step, idx FROM _p WHERE source = ? AND hour = ?"
                                      " ORDER BY idx", target, [source, hour])
                    rel = target.relative_to(self.root).as_posix()
                    row = con.execute("SELECT count(*) FROM _p WHERE source = ? AND hour = ?",
                                      [source, hour]).fetchone()
                    files[rel] = int(row[0]) if row else 0
            finally:
                con.close()
        if old is not None:  # parts of an earlier run of this unit that this run did not make
            for stale in set(old.files) - set(files):
                (self.root / stale).unlink(missing_ok=True)
        man = UnitManifest(unit, files, dict(meta or {}))
        _atomic_text(self.manifest_path(unit),
                     json.dumps({"unit": unit, "files": files, "meta": man.meta},
                                sort_keys=True))
        return man


def _columns(batches: list[PointBatch]) -> dict[str, np.ndarray] | None:
    """One columnar table of the batches, with the partition keys and the row order."""
    if not batches:
        return None
    times = np.concatenate([b.times for b in batches]).astype(np.int64)
    src = np.empty(times.size, dtype=object)
    src[:] = np.concatenate([np.full(len(b), b.source, dtype=object) for b in batches])
    return {
        "source": src,
        "hour": times - times % 3600,
        "entity_type": np.concatenate([b.entity_types for b in batches]).astype(object),
        "entity_code": np.concatenate([b.entity_codes for b in batches]).astype(object),
        "signal": np.concatenate([b.signals for b in batches]).astype(object),
        "time": times,
        "value": np.concatenate([b.values for b in batches]).astype(np.float64),
        "step": np.concatenate([np.full(len(b), _NO_STEP if b.step is None else b.step,
                                        dtype=np.int64) for b in batches]),
        "idx": np.arange(times.size, dtype=np.int64),
    }


class PartitionSink(Pipeline):
    """A :class:`~netvigil.model.facts.FactSink` that writes a unit's points to a dataset.

    It *is* the pipeline (the same aggregators, origins and probing chain, subclassed, not
    copied); only where flushed point batches go differs: into the unit's buffer, written as
    partitions by :meth:`commit`, instead of the store. Checkpoints and cursors the pipeline
    and sources keep go to ``state`` (a worker's own DuckDB file; in memory by default, so a
    unit is then self-contained).
    """

    def __init__(self, writer: DatasetWriter, unit: str, geo: GeoLookup | None = None, *,
                 state: Store | None = None, probing: ProbingOptions | None = None) -> None:
        if state is None:
            from netvigil.store.duck import Store

            state = Store(":memory:")
        super().__init__(state, geo, probing=probing)
        self.writer = writer
        self.unit = check_unit(unit)
        self._out: list[PointBatch] = []

    def flush(self, cursors: Mapping[str, str] | None = None) -> None:
        """Buffered batches join the unit; checkpoints and cursors go to the state store."""
        self._out.extend(self._pending)
        self.stats.points += sum(len(b) for b in self._pending)
        self._pending = []
        super().flush(cursors)

    def commit(self, meta: Mapping[str, object] | None = None) -> UnitManifest:
        """Flush, then write the unit's partitions and manifest."""
        self.flush()
        out, self._out = self._out, []
        return self.writer.write_unit(self.unit, out, meta)


@dataclass(frozen=True)
class DatasetImport:
    """What :func:`import_dataset` read and the store did with it."""

    files: int
    rows: int
    inserted: int
    updated: int
    unchanged: int


def dataset_parts(root: str | Path) -> list[tuple[str, Path]]:
    """``(source, file)`` of every part under ``root``, sorted by relative path."""
    base = Path(root)
    if not base.is_dir():
        raise InputError(str(base), None, "not a dataset directory")
    out = []
    for path in sorted(base.glob("source=*/date=*/hour=*/part-*.parquet")):
        rel = path.relative_to(base).as_posix()
        m = _PART_RE.match(rel)
        if m is None:
            raise InputError(str(path), None, "not a dataset part (source=/date=/hour=/part-)")
        out.append((unquote(m["source"]), path))
    return out


def import_dataset(store: Store, root: str | Path) -> DatasetImport:
    """Load every part under ``root`` into ``store`` in one transaction.

    Per (source, declared step): one staged relation over the parts (rows ordered by part
    path, then ``idx``, so the last repeated key wins) through
    :meth:`Pipeline.write_staged` — :meth:`Store.write_staged_points`, the upsert every
    emitted batch takes. Idempotent: importing a dataset twice changes nothing.
    """
    parts = dataset_parts(root)
    pipeline = Pipeline(store)
    by_source: dict[str, list[Path]] = {}
    for source, path in parts:
        by_source.setdefault(source, []).append(path)
    con = store.connection
    rows = 0
    with store.transaction():
        for source, paths in sorted(by_source.items()):
            listing = ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths)
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _ds_all AS SELECT entity_type, entity_code,"
                " signal, time, value, step, row_number() OVER (ORDER BY filename, idx) AS idx"
                f" FROM read_parquet([{listing}], filename = true)")
            steps = [cast("int | None", r[0]) for r in con.execute(
                "SELECT DISTINCT step FROM _ds_all ORDER BY step NULLS FIRST").fetchall()]
            for step in steps:
                con.execute(
                    "CREATE OR REPLACE TEMP TABLE _ds AS SELECT entity_type, entity_code,"
                    " signal, time, coalesce(value, 'NaN'::DOUBLE) AS value, idx FROM _ds_all"
                    " WHERE step IS NOT DISTINCT FROM ?", [step])
                row = con.execute("SELECT count(*) FROM _ds").fetchone()
                rows += int(row[0]) if row else 0
                pipeline.write_staged("_ds", source=source, step=step)
                con.execute("DROP TABLE _ds")
            con.execute("DROP TABLE _ds_all")
    s = pipeline.stats
    return DatasetImport(len(parts), rows, s.inserted, s.updated, s.unchanged)
