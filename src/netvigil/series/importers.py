"""Series import: the public entry point behind ``netvigil series import``.

Flow: one streaming pass over the raw bytes (:mod:`netvigil.series.scan`: sha256, gunzip by
magic bytes so ``.gz`` works for every format, strict UTF-8, the CSV record map) -> pick a
format (``FORMATS``; from the extension, else from the first character) -> parse and
validate -> points go through the caller's sink (``netvigil.pipeline.Pipeline``, the one
path into the store: :class:`netvigil.model.facts.PointBatch` facts for parsed formats, the
staged relation of a validated CSV for ``Pipeline.write_staged``) -> entities and
the imports row. Everything runs inside ONE outer ``store.transaction()`` (the pipeline's
own transactions join it), so with ``on_error="fail"`` a bad file writes nothing at all,
whatever was emitted before the bad line was found.

Whole-file problems (unreadable, empty, truncated gzip, not UTF-8, missing header columns,
not JSON) always fail, whatever the policy: there is no "rest" worth writing.

Both formats stream in bounded memory (issue 12, defect 11). CSV: DuckDB stages, validates
and writes it set-based (:mod:`netvigil.series.csv_format`). IODA JSON: parsed as a stream of
events one series at a time (:func:`netvigil.series.ioda_format.stream_ioda`), its points
handed to the sink series by series and flushed every :data:`FLUSH_POINTS` points. A key
repeated across series (two answers concatenated) is checked against the points this file
already wrote, read back from the store inside the import's transaction, so no per-point table
is kept in memory.

What bounds the peak, since the import stays ONE transaction (so ``fail`` and a kill -9 write
nothing): :func:`import_budget` caps DuckDB for the import (:data:`IMPORT_SETTINGS`: 128 MB,
no insertion order to keep), and everything the transaction holds until it commits lives in
DuckDB's buffer manager, which spills beyond the cap to ``<store>.tmp``: the CSV staging
tables, the store's temp tables, and the IODA batches, which ``Store.write_points`` copies into
a temp table by a replacement scan. (It used to ``register`` them: DuckDB held each registered
view's numpy columns until the commit, ~55 B/value for the whole file, shown with
``tracemalloc``.) Python holds at most :data:`FLUSH_POINTS` buffered points, one IODA series
and, for CSV, :data:`netvigil.series.csv_format.HASH_PART` key hashes.

Measured with ``benchmarks/bench_import_memory.py`` (the CLI in a child process, peak RSS,
2 shared cores under heavy load from other work; baseline = a 10-row file, 123-126 MB):

=============  =====================  =====================  ================================
input          before: peak MB         after: peak MB, s      peer (child process)
=============  =====================  =====================  ================================
IODA 0.5M      248                    249, 5.6               ``json.load``: 16 MB, 0.1 s
IODA 2M        328 (1,409 whole-doc)  249, 21.9              36 MB, 0.8 s
IODA 4M        447                    253, 39.9              61 MB, 1.5 s
CSV 0.5M       264                    219, 14.2              DuckDB ``read_csv``: 113 MB, 2.2 s
CSV 2M         582                    248, 25.5              192 MB, 3.4 s
CSV 4M         929                    258, 66.5              248 MB, 7.8 s
=============  =====================  =====================  ================================

Slope 0.5M -> 4M: IODA 1.3 B/value (was 59.6), CSV 11.6 B/row (was 199.2; the 0.5M CSV
import does not yet fill the cap while it validates). Speed, previous code (``git archive``
of the parent commit on ``PYTHONPATH``) against this one, 2M values/rows, alternated runs on
the loaded machine (load average 6-10 on 2 cores, so +-50% run to run): CSV 14.3/11.7 s
before vs 13.4/13.2 s after; IODA median of 5, 8.35 s before vs 9.90 s after (+19%: the
batches the transaction keeps spill instead of staying in RAM).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import duckdb
import numpy as np
import numpy.typing as npt
from isal import igzip

from netvigil.model import Entity, EntityRef, InputError
from netvigil.model.facts import FactSink, PointBatch
from netvigil.series.batch import Batch, ErrorSink, SkipReport
from netvigil.series.csv_format import StagedSink, import_csv
from netvigil.series.ioda_format import IodaOutcome, parse_ioda, stream_ioda
from netvigil.series.scan import FileScan, scan_file
from netvigil.store import ImportRecord, SeriesStore, WriteResult

Parser = Callable[[str, str, ErrorSink], Batch]

#: format name -> in-memory parser(text, path, sink) for formats parsed whole; ``csv`` is
#: streamed by :func:`netvigil.series.csv_format.import_csv` instead.
FORMATS: dict[str, Parser | None] = {
    "csv": None,
    "ioda": parse_ioda,
}
EXTENSIONS = {".csv": "csv", ".json": "ioda"}


class _Stats(Protocol):
    inserted: int
    updated: int
    unchanged: int


class CountingSink(StagedSink, Protocol):
    """A FactSink that counts store rows and writes staged points
    (``netvigil.pipeline.Pipeline`` is one)."""

    @property
    def stats(self) -> _Stats: ...


@dataclass(frozen=True)
class ImportSummary:
    path: str
    format: str
    rows_read: int
    accepted: int  # points handed to the store (inserted + updated + unchanged)
    result: WriteResult
    skipped: int
    skip_report: SkipReport = field(default_factory=SkipReport)
    series_touched: int = 0
    source_names: tuple[str, ...] = ()

    def text(self) -> str:
        r = self.result
        return (f"{self.path}: {self.rows_read} rows read, {self.accepted} written "
                f"({r.inserted} inserted, {r.updated} updated, {r.unchanged} unchanged), "
                f"{self.skipped} skipped, {self.series_touched} series touched")


def detect_format(path: Path, text: str) -> str:
    """By extension (ignoring .gz), else by content: a JSON object means IODA, else CSV."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in EXTENSIONS:
        return EXTENSIONS[suffixes[-1]]
    return "ioda" if text.lstrip().lstrip("\ufeff").startswith(("{", "[")) else "csv"


def open_stream(scan: FileScan) -> Any:
    """The file's bytes, gunzipped when it is gzip, without a UTF-8 BOM (the scan pass has
    already checked the gzip stream, its decompression bound and the UTF-8)."""
    raw: BinaryIO = (igzip.open(scan.path, "rb")  # type: ignore[no-untyped-call]
                     if scan.gzip else open(scan.path, "rb"))  # noqa: SIM115
    head = raw.read(3)
    return _Prefixed(b"" if head == BOM else head, raw)


BOM = b"\xef\xbb\xbf"


class _Prefixed:
    """``prefix`` then the rest of ``raw`` (the bytes read to look for a BOM); a plain
    ``read`` object (ijson prefers ``readinto`` when a file object offers one)."""

    def __init__(self, prefix: bytes, raw: BinaryIO) -> None:
        self._prefix = prefix
        self._raw = raw

    def read(self, n: int = -1) -> bytes:
        if self._prefix and n:  # ijson's read(0) probes for bytes vs text
            out, self._prefix = self._prefix, b""
            return out
        return self._raw.read(n)

    def __enter__(self) -> _Prefixed:
        return self

    def __exit__(self, *exc: object) -> None:
        self._raw.close()


def _counts(sink: CountingSink) -> WriteResult:
    s = sink.stats
    return WriteResult(s.inserted, s.updated, s.unchanged)


def import_file(store: SeriesStore, path: str | Path, fmt: str | None = None,
                on_error: str = "fail", *, sink: CountingSink) -> ImportSummary:
    """Import one file into ``store`` through ``sink`` all-or-nothing (module docstring).

    ``sink`` must write into ``store`` (``Pipeline(store)``); it is flushed inside the one
    outer transaction.
    """
    p = Path(path)
    ErrorSink(str(p), on_error)  # validates the policy name before any work
    scan = scan_file(p)
    name = fmt or detect_format(p, scan.head)
    if name not in FORMATS:
        raise InputError(str(p), None, f"unknown format {name!r}; known: {', '.join(FORMATS)}")
    source = f"{name}:{p.name}"
    before = _counts(sink)
    source_names: tuple[str, ...] = ()
    with import_budget(store.connection), store.transaction():
        if name == "csv":
            out, entities = import_csv(store.connection, scan, sink, source, on_error)
            rows_read, accepted, skipped = out.rows_read, out.accepted, out.skipped
            report, touched = out.report, out.series_touched
        else:
            esink = ErrorSink(str(p), on_error)
            writer = _IodaWriter(store, sink, source, esink)
            with open_stream(scan) as fh:
                ioda = stream_ioda(fh, str(p), esink, writer.emit)
            writer.flush()
            entities = _ioda_entities(ioda)
            rows_read, accepted, skipped = ioda.rows_read, writer.accepted, esink.skipped
            report, touched = esink.report, len(writer.spans)
            source_names = tuple(sorted(ioda.source_names))
        store.upsert_entities(entities)
        after = _counts(sink)
        result = WriteResult(after.inserted - before.inserted, after.updated - before.updated,
                             after.unchanged - before.unchanged)
        store.record_import(ImportRecord(
            file_name=str(p), sha256=scan.sha256, format=name, rows_read=rows_read,
            rows_written=accepted, rows_skipped=skipped, inserted=result.inserted,
            updated=result.updated, unchanged=result.unchanged, source_names=source_names,
        ))
    return ImportSummary(str(p), name, rows_read, accepted, result, skipped, report, touched,
                         source_names)


#: DuckDB's memory cap for the connection while a file is imported (both formats). Beyond it
#: the CSV staging tables, the store's temp tables and the batches the one transaction keeps
#: until it commits spill to the store's temp directory (``<store>.tmp``, DuckDB's default).
#: Chosen so that a 0.5M-row file already reaches it: the peak is then the same from 0.5M to
#: 4M rows (``benchmarks/bench_import_memory.py``).
MEMORY_LIMIT = "128MB"
#: DuckDB settings while importing: the cap above; no insertion order to keep (points are
#: keyed, never read back in file order), which lets DuckDB stream its inserts.
IMPORT_SETTINGS = {"memory_limit": MEMORY_LIMIT, "preserve_insertion_order": "false"}


@contextmanager
def import_budget(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """:data:`IMPORT_SETTINGS` on ``con`` for the block, the previous values restored after
    (settings belong to the connection, not to the transaction)."""
    saved = {k: con.execute("SELECT current_setting(?)", [k]).fetchone() for k in
             IMPORT_SETTINGS}
    for key, value in IMPORT_SETTINGS.items():
        con.execute(f"SET {key} = '{value}'")
    try:
        yield
    finally:
        for key, row in saved.items():
            if row is not None:
                with contextlib.suppress(duckdb.Error):
                    con.execute(f"SET {key} = '{row[0]}'")


#: points handed to the sink between flushes (the sink buffers until it is flushed)
FLUSH_POINTS = 500_000


class _IodaWriter:
    """The ``emit`` of :func:`stream_ioda`: points to the sink as PointBatch facts, and the
    duplicate rule of the CSV path across series of the same key (module docstring)."""

    def __init__(self, store: SeriesStore, sink: CountingSink, source: str,
                 esink: ErrorSink) -> None:
        self.store, self.sink, self.source, self.esink = store, sink, source, esink
        # (type, code, signal) -> [(start, step, packed accepted mask, n, where)]
        self.spans: dict[tuple[str, str, str], list[tuple[int, int, Any, int, str]]] = {}
        self.accepted = 0
        self._unflushed = 0
        self._buf: dict[int, list[tuple[tuple[str, str, str], Any, Any]]] = {}

    def emit(self, ref: EntityRef, signal: str, idx: npt.NDArray[np.int64],
             times: npt.NDArray[np.int64], values: npt.NDArray[np.float64], step: int,
             where: str) -> None:
        key = (ref.type.value, ref.code, signal)
        keep = np.ones(times.size, dtype=bool)
        for s0, st0, packed, n0, w0 in self.spans.get(key, []):
            rel = times - s0
            on = (rel >= 0) & (rel % st0 == 0) & (rel // st0 < n0) & keep
            k = rel[on] // st0
            hit = np.flatnonzero(on)[np.unpackbits(packed, count=n0).astype(bool)[k]]
            if hit.size:
                self._conflicts(key, hit, times, values, idx, keep, (s0, st0, w0), where)
        n = int(keep.sum())
        mask = np.zeros(int(idx[-1]) + 1, dtype=bool)
        mask[idx[keep]] = True
        self.spans.setdefault(key, []).append((int(times[0] - idx[0] * step), step,
                                               np.packbits(mask), mask.size, where))
        if not n:
            return
        self._buf.setdefault(step, []).append((key, times[keep], values[keep]))
        self.accepted += n
        self._unflushed += n
        if self._unflushed >= FLUSH_POINTS:
            self.flush()

    def flush(self) -> None:
        """The buffered series as one PointBatch per step, then the sink's flush: the store's
        per-write cost (series bookkeeping) is paid per FLUSH_POINTS, not per series."""
        for step, parts in self._buf.items():
            n = [t.size for _k, t, _v in parts]
            self.sink.emit(PointBatch(
                np.repeat(np.array([k[0] for k, _t, _v in parts], dtype=object), n),
                np.repeat(np.array([k[1] for k, _t, _v in parts], dtype=object), n),
                np.repeat(np.array([k[2] for k, _t, _v in parts], dtype=object), n),
                np.concatenate([t for _k, t, _v in parts]),
                np.concatenate([v for _k, _t, v in parts]), self.source, step))
        self._buf = {}
        self.sink.flush()
        self._unflushed = 0

    def _conflicts(self, key: tuple[str, str, str], hit: npt.NDArray[np.int64],
                   times: npt.NDArray[np.int64], values: npt.NDArray[np.float64],
                   idx: npt.NDArray[np.int64], keep: npt.NDArray[np.bool_],
                   earlier: tuple[int, int, str], where: str) -> None:
        """Points of this series at times an earlier series of the file wrote: the same
        value is dropped silently, another is a "conflicting duplicate" naming both."""
        self.flush()
        lo, hi = int(times[hit].min()), int(times[hit].max())
        rows = self.store.connection.execute(
            "SELECT time, value FROM points WHERE entity_type = ? AND entity_code = ? AND "
            "signal = ? AND time BETWEEN ? AND ?", [*key, lo, hi]).fetchall()
        before = {int(t): (math.nan if v is None else float(v)) for t, v in rows}
        s0, st0, w0 = earlier
        fqid = f"{key[0]}/{key[1]}"
        for j in hit.tolist():
            t, v = int(times[j]), float(values[j])
            pv = before.get(t, math.nan)
            keep[j] = False
            if pv == v or (math.isnan(pv) and math.isnan(v)):
                continue
            self.esink.bad(None, "conflicting duplicate",
                           f"{fqid} {key[2]} at {t} is {pv!r} at {w0}.values[{(t - s0) // st0}]"
                           f" but {v!r} at {where}.values[{int(idx[j])}]")


def _ioda_entities(out: IodaOutcome) -> list[Entity]:
    refs = set(out.names) | set(out.parents)
    return [Entity(r, out.names.get(r, ""), out.parents.get(r)) for r in sorted(refs)]


def _batch_entities(batch: Batch) -> list[Entity]:
    refs = set(batch.names) | set(batch.parents)
    return [Entity(r, batch.names.get(r, ""), batch.parents.get(r)) for r in sorted(refs)]


def _emit_batch(batch: Batch, sink: FactSink, source: str) -> None:
    """One PointBatch per declared step (IODA series carry their own step)."""
    steps = np.array([-1 if s is None else s for s in batch.steps], dtype=np.int64)
    types = np.asarray(batch.entity_types, dtype=object)
    codes = np.asarray(batch.entity_codes, dtype=object)
    sigs = np.asarray(batch.signals, dtype=object)
    times = np.asarray(batch.times, dtype=np.int64)
    values = np.asarray(batch.values, dtype=np.float64)
    for st in np.unique(steps):
        m = steps == st
        sink.emit(PointBatch(types[m], codes[m], sigs[m], times[m], values[m], source,
                             None if st < 0 else int(st)))
    sink.flush()
