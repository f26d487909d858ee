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

CSV streams (DuckDB stages, validates and writes it set-based; memory bounded by DuckDB's
buffer manager, see :mod:`netvigil.series.csv_format`). IODA JSON is parsed whole with the
stdlib ``json`` (a JSON document has no natural chunk boundary; IODA answers are small):
its memory grows with the file.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from netvigil.model import Entity, InputError
from netvigil.model.facts import FactSink, PointBatch
from netvigil.series.batch import Batch, ErrorSink, SkipReport
from netvigil.series.csv_format import StagedSink, import_csv
from netvigil.series.ioda_format import parse_ioda
from netvigil.series.scan import GZIP_MAGIC, FileScan, scan_file
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


def read_text(scan: FileScan) -> str:
    """The whole decoded text (JSON formats only; CSV is never held in memory)."""
    raw = Path(scan.path).read_bytes()
    data = gzip.decompress(raw) if raw[:2] == GZIP_MAGIC else raw
    return data.decode("utf-8-sig")


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
    with store.transaction():
        if name == "csv":
            out, entities = import_csv(store.connection, scan, sink, source, on_error)
            rows_read, accepted, skipped = out.rows_read, out.accepted, out.skipped
            report, touched = out.report, out.series_touched
        else:
            parser = FORMATS[name]
            assert parser is not None
            try:
                text = read_text(scan)
            except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
                raise InputError(str(p), None, f"cannot read file: {exc}") from None
            esink = ErrorSink(str(p), on_error)
            batch = parser(text, str(p), esink)
            entities = _batch_entities(batch)
            _emit_batch(batch, sink, source)
            rows_read, accepted, skipped = batch.rows_read, len(batch), esink.skipped
            report = esink.report
            touched = len(set(zip(batch.entity_types, batch.entity_codes, batch.signals,
                                  strict=True)))
            source_names = tuple(sorted(batch.source_names))
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
