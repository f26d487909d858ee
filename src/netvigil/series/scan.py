"""One streaming pass over a series file: checksum, gzip and UTF-8 checks, CSV record map.

Why a pass of our own before DuckDB reads the file: the imports row needs the sha256 of the
raw bytes; whole-file problems (truncated gzip, undecodable bytes) must fail with a line
number before anything is parsed; and DuckDB's CSV reader counts *records* (a quoted field
may span lines) and drops blank records without telling, while our contract numbers physical
lines like ``csv.reader.line_num`` (line 1 = header, a record's line = the line it ends on).
The pass records the few irregular records (blank, multi-line) so record numbers and row
ordinals map to physical lines exactly (:meth:`FileScan.line_of_record`).

Memory: one block (``BLOCK`` bytes) plus the irregular-record lists; the block loop is
numpy-vectorised (newline and quote positions), about 1 GB/s.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from isal import igzip, isal_zlib

from netvigil.model import InputError, bounds
from netvigil.series import rules

BLOCK = 8 << 20
GZIP_MAGIC = b"\x1f\x8b"
NL, QUOTE, CR = 10, 34, 13


@dataclass
class FileScan:
    """What the pass learned. Record numbers count like DuckDB: header = 1, blank records
    included; ``multiline[r]`` = extra physical lines inside record ``r``."""

    path: str
    sha256: str
    gzip: bool
    head: str  # decoded text of the first block (format sniffing and the header)
    records: int = 0  # records incl. header and blank ones
    blank: list[int] = field(default_factory=list)
    multiline: dict[int, int] = field(default_factory=dict)
    bytes_read: int = 0

    def line_of_record(self, rec: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Physical line on which each record (DuckDB numbering) ends."""
        rec = np.asarray(rec, dtype=np.int64)
        if not self.multiline:
            return rec
        keys = np.array(sorted(self.multiline), dtype=np.int64)
        extra = np.cumsum([self.multiline[int(k)] for k in keys])
        i = np.searchsorted(keys, rec, side="right")
        return rec + np.where(i > 0, extra[np.maximum(i - 1, 0)], 0)

    def record_of_row(self, k: npt.NDArray[np.int64],
                      dropped: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Record number of the k-th (0-based) data row DuckDB returned, given the sorted
        record numbers it did not return (``dropped``: blank records and rejected rows)."""
        k = np.asarray(k, dtype=np.int64)
        gone = np.unique(np.concatenate([np.asarray(self.blank, dtype=np.int64),
                                         np.asarray(dropped, dtype=np.int64)]))
        gone = gone[gone > 1]
        # rows returned before the j-th dropped record: gone[j] - 2 - j
        before = gone - 2 - np.arange(gone.size)
        return k + 2 + np.searchsorted(before, k, side="right")


class _HashingReader(io.RawIOBase):
    """A file wrapper that feeds every byte read into sha256 (checksum of the raw file)."""

    def __init__(self, fh: io.BufferedReader) -> None:
        self._fh = fh
        self.sha = hashlib.sha256()
        self.n = 0  # compressed bytes read (the decompression bound's denominator)

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        n = self._fh.readinto(buf)
        if n:
            self.sha.update(memoryview(buf)[:n])
            self.n += n
        return n or 0


def _blocks(path: Path, scan: FileScan) -> Iterator[bytes]:
    """Decompressed blocks of ``path`` (gzip detected by magic bytes, multi-member ok),
    refused past the decompression bound of :mod:`netvigil.model.bounds` (a gzip bomb stops
    after at most one block beyond it, rule ``decompression-bound``)."""
    p = str(path)
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise InputError(p, None, f"cannot read file: {exc.strerror or exc}") from None
    with fh:
        hashing = _HashingReader(fh)
        scan.gzip = fh.read(2) == GZIP_MAGIC
        fh.seek(0)
        if not scan.gzip and path.suffix.lower() == ".gz" and path.stat().st_size:
            raise InputError(p, None, "file ends in .gz but is not gzip-compressed")
        src: Any = (igzip.IGzipFile(fileobj=hashing, mode="rb")  # type: ignore[no-untyped-call]
                    if scan.gzip else hashing)
        out = 0
        try:
            while chunk := src.read(BLOCK):
                out += len(chunk)
                if scan.gzip and bounds.inflation_exceeded(hashing.n, out):
                    rule = rules.RULES["decompression-bound"]
                    raise InputError(p, None, f"{rule.category}: "
                                              f"{bounds.inflation_text(hashing.n, out)}")
                yield chunk
        # isal_zlib.error (IsalError: damaged deflate data) is not a zlib.error (fuzz);
        # its stub declares it an instance, hence the ignore
        except (EOFError, OSError, zlib.error, isal_zlib.error) as exc:  # type: ignore[misc]
            raise InputError(p, None, f"truncated or corrupt gzip file: {exc}") from None
        scan.sha256 = hashing.sha.hexdigest()


def scan_file(path: Path) -> FileScan:
    """Read ``path`` once; raise InputError on whole-file problems (see module docstring)."""
    p = str(path)
    scan = FileScan(p, "", False, "")
    utf8 = codecs.getincrementaldecoder("utf-8")("strict")
    inside = False  # inside a quoted field at the block start
    line = 1  # physical line at the block start
    rec = 1  # number of the record open at the block start
    base = 0  # absolute offset of the block
    last_end = -1  # absolute offset of the last record-ending newline
    last_byte = 0
    for data in _blocks(path, scan):
        try:
            text = utf8.decode(data)
        except UnicodeDecodeError as exc:
            at = line + data.count(b"\n", 0, exc.start)
            raise InputError(p, at, f"undecodable bytes (file must be UTF-8): {exc.reason} at "
                                    f"byte {base + exc.start}") from None
        if len(scan.head) < 65536:
            scan.head += text[:65536]
        arr = np.frombuffer(data, dtype=np.uint8)
        nl = np.flatnonzero(arr == NL)
        q = np.flatnonzero(arr == QUOTE)
        if q.size:
            ends = nl[(np.searchsorted(q, nl) + int(inside)) % 2 == 0]
            inside = bool((q.size + int(inside)) % 2)
        else:
            ends = nl[:0] if inside else nl
        if ends.size:
            abs_ends = ends + base
            starts = np.concatenate([[last_end], abs_ends[:-1]]) + 1
            before = np.where(ends > 0, arr[np.maximum(ends - 1, 0)], last_byte)
            blank = (abs_ends == starts) | ((abs_ends == starts + 1) & (before == CR))
            scan.blank.extend((rec + np.flatnonzero(blank)).tolist())
            last_end = int(abs_ends[-1])
        if ends.size != nl.size:  # newlines inside quotes: extra lines of their record
            inner = nl[~np.isin(nl, ends)]
            owner = rec + np.searchsorted(ends, inner)
            for r, c in zip(*np.unique(owner, return_counts=True), strict=True):
                scan.multiline[int(r)] = scan.multiline.get(int(r), 0) + int(c)
        rec += int(ends.size)
        line += int(nl.size)
        base += arr.size
        last_byte = int(arr[-1])
    try:
        utf8.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise InputError(p, line, f"undecodable bytes (file must be UTF-8): {exc.reason} at "
                                  f"the end of the file") from None
    scan.records = rec - 1 + (1 if last_end < base - 1 else 0)
    scan.bytes_read = base
    if not scan.head.strip():
        raise InputError(p, None, "empty file")
    return scan
