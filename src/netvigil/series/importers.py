"""Series import: the public entry point behind ``netvigil series import``.

Pipeline: read bytes -> gunzip (by magic bytes, so ``.gz`` works for every format) ->
strict UTF-8 decode -> pick a format (``FORMATS`` registry; auto-detected from the
extension, else from the first character) -> parse and validate everything -> write in ONE
store transaction (entities, points, imports row). Parsing finishes before the store is
touched, so with ``on_error="fail"`` a bad file writes nothing at all.

Whole-file problems (unreadable, empty, truncated gzip, not UTF-8, missing header columns,
not JSON) always fail, whatever the policy: there is no "rest" worth writing.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from netvigil.model import Entity, InputError
from netvigil.series.batch import Batch, ErrorSink, SkipReport
from netvigil.series.csv_format import parse_csv
from netvigil.series.ioda_format import parse_ioda
from netvigil.store import ImportRecord, Store, WriteResult

Parser = Callable[[str, str, ErrorSink], Batch]

#: format name -> parser(text, path, sink). Add a format by adding a module and a row here.
FORMATS: dict[str, Parser] = {
    "csv": parse_csv,
    "ioda": parse_ioda,
}
EXTENSIONS = {".csv": "csv", ".json": "ioda"}
GZIP_MAGIC = b"\x1f\x8b"


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


def read_text(path: Path) -> tuple[str, str]:
    """(decoded text, sha256 of the raw file bytes); raises InputError on whole-file problems."""
    p = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(p, None, f"cannot read file: {exc.strerror or exc}") from None
    digest = hashlib.sha256(raw).hexdigest()
    data = raw
    if raw[:2] == GZIP_MAGIC:
        try:
            data = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as exc:
            raise InputError(p, None, f"truncated or corrupt gzip file: {exc}") from None
    elif path.suffix.lower() == ".gz" and raw:
        raise InputError(p, None, "file ends in .gz but is not gzip-compressed")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(p, line, f"undecodable bytes (file must be UTF-8): {exc.reason} "
                                  f"at byte {exc.start}") from None
    if not text.strip():
        raise InputError(p, None, "empty file")
    return text, digest


def detect_format(path: Path, text: str) -> str:
    """By extension (ignoring .gz), else by content: a JSON object means IODA, else CSV."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in EXTENSIONS:
        return EXTENSIONS[suffixes[-1]]
    return "ioda" if text.lstrip().startswith(("{", "[")) else "csv"


def parse_file(path: str | Path, fmt: str | None = None,
               on_error: str = "fail") -> tuple[Batch, ErrorSink, str, str]:
    """Read and validate a file without touching any store: (batch, sink, format, sha256)."""
    p = Path(path)
    text, digest = read_text(p)
    name = fmt or detect_format(p, text)
    if name not in FORMATS:
        raise InputError(str(p), None, f"unknown format {name!r}; known: {', '.join(FORMATS)}")
    sink = ErrorSink(str(p), on_error)
    batch = FORMATS[name](text, str(p), sink)
    return batch, sink, name, digest


def import_file(store: Store, path: str | Path, fmt: str | None = None,
                on_error: str = "fail") -> ImportSummary:
    """Import one file into ``store`` all-or-nothing; see the module docstring."""
    p = Path(path)
    batch, sink, name, digest = parse_file(p, fmt, on_error)
    source = f"{name}:{p.name}"
    refs = set(batch.names) | set(batch.parents)
    entities = [Entity(r, batch.names.get(r, ""), batch.parents.get(r)) for r in sorted(refs)]
    result = WriteResult(0, 0, 0)
    steps = np.array([-1 if s is None else s for s in batch.steps], dtype=np.int64)
    types = np.asarray(batch.entity_types, dtype=object)
    codes = np.asarray(batch.entity_codes, dtype=object)
    sigs = np.asarray(batch.signals, dtype=object)
    times = np.asarray(batch.times, dtype=np.int64)
    values = np.asarray(batch.values, dtype=np.float64)
    with store.transaction():
        store.upsert_entities(entities)
        for st in np.unique(steps):
            m = steps == st
            result = result + store.write_points(
                types[m], codes[m], sigs[m], times[m], values[m], source=source,
                step=None if st < 0 else int(st),
            )
        store.record_import(ImportRecord(
            file_name=str(p), sha256=digest, format=name, rows_read=batch.rows_read,
            rows_written=len(batch), rows_skipped=sink.skipped, inserted=result.inserted,
            updated=result.updated, unchanged=result.unchanged,
            source_names=tuple(sorted(batch.source_names)),
        ))
    touched = len(set(zip(batch.entity_types, batch.entity_codes, batch.signals, strict=True)))
    return ImportSummary(str(p), name, batch.rows_read, len(batch), result, sink.skipped,
                         sink.report, touched, tuple(sorted(batch.source_names)))
