"""Bounded reading of raw OONI measurement files: JSON, JSONL, gzip, and the bucket layout.

What OONI publishes (anchors §4.2, §4.4 tier 0): one measurement per line in
``raw/YYYYMMDD/HH/CC/testname/*.jsonl.gz`` (the S3 bucket layout, by *upload* hour), one
measurement per file from the API and the probes (often pretty-printed), and old
reports converted from YAML, and the legacy YAML reports themselves (OONI before 2016: a
YAML stream whose first document is the report header and each later document one
measurement entry; :func:`_yaml_records`). :func:`iter_records` reads all of them with the
same contract:
every record comes out with its file and physical line, parsed or with the reason it could
not be (never dropped, never fatal here: the caller applies the error policy).

Bounds, because these files come from the network and from probes we do not control:

* :data:`MAX_LINE_BYTES` per line (and per whole-file document): a longer line is one
  malformed record ("line longer than …"); its rest is read through and discarded in
  blocks, so memory stays at one cap.
* :data:`MAX_DECOMPRESSED_BYTES` per file after gunzip: a gzip bomb stops with a whole-file
  error at the cap (bytes, not a ratio: a 30 MB measurement is legitimate, a 2 GB line
  is not). Both are parameters so a caller can tighten them.

No shared helper for these caps existed in ``netvigil.series`` or ``netvigil.sources`` when
this was written (checked 2026-12-02); this one is small and has no OONI knowledge, so it
can move to a shared module later.

JSON is parsed with ``orjson`` (a maintained C parser, 2-4x the stdlib's speed on OONI
measurements, see ``benchmarks/bench_ooni_import.py``); it rejects NaN/Infinity and invalid
UTF-8 as the JSON standard does, which we want for input from the network.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson
import yaml  # type: ignore[import-untyped]  # PyYAML: no stubs installed (types-PyYAML)
from isal import igzip, isal_zlib

from netvigil.model import InputError
from netvigil.sources.ooni.meta import legacy_measurement

MAX_LINE_BYTES = 32 << 20  # 32 MiB: OONI's largest real measurements are a few MiB
MAX_DECOMPRESSED_BYTES = 4 << 30  # 4 GiB per file after gunzip
GZIP_MAGIC = b"\x1f\x8b"
_SKIP_BLOCK = 1 << 20
#: read buffers: 64 KiB, not 1 MiB: a 1 MiB buffer per file is a fresh mmap the kernel
#: zeroes page by page (bucket files are ~60 KB of gzip); measured on the 40k-measurement
#: bench bucket (912 files): 1.45 -> 1.15 CPU s for iter_records (lines longer than the
#: buffer are still read whole: BufferedReader.readline grows past it)
_BUFFER = 1 << 16

#: ``raw/YYYYMMDD/HH/CC/testname/<file>`` below the folder given to ``--dir``
BUCKET_GLOB = "raw/[0-9]*/[0-9]*/*/*/*"
_BUCKET_PARTS = re.compile(r"^\d{8}$|^\d{2}$")
MEASUREMENT_SUFFIXES = (".jsonl.gz", ".json.gz", ".jsonl", ".json")


@dataclass(frozen=True, slots=True)
class Record:
    """One measurement as read: ``doc`` parsed, or ``error`` saying why not."""

    path: str
    line: int  # physical line the record starts on (1-based)
    doc: dict[str, Any] | None
    error: str | None = None


class _CappedReader(io.RawIOBase):
    """Counts bytes read from a (decompressing) stream and refuses to pass the cap."""

    def __init__(self, inner: IO[bytes], cap: int, path: str,
                 raw: io.RawIOBase | None = None) -> None:
        self._inner = inner
        self._raw = raw  # the file under a decompressor (closed with it)
        self._cap = cap
        self._path = path
        self.total = 0

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            self._inner.close()
            if self._raw is not None:
                self._raw.close()
        super().close()

    def readinto(self, b: Any) -> int:
        n = self._inner.readinto(b)  # type: ignore[attr-defined]
        self.total += n
        if self.total > self._cap:
            raise InputError(self._path, None, f"decompressed size exceeds {self._cap} bytes "
                                               "(gzip bomb or wrong file)")
        return int(n)


class _HashingReader(io.RawIOBase):
    """The raw file, feeding every byte read into a hash (the imports row's sha256 in the
    same pass as the parse: a second read of each file cost a third of an import)."""

    def __init__(self, raw: IO[bytes], sha: Any) -> None:
        self._raw = raw
        self._sha = sha

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self._raw.readinto(b)  # type: ignore[attr-defined]
        if n:
            self._sha.update(memoryview(b)[:n])
        return int(n or 0)

    def drain(self) -> None:
        """Hash the bytes nobody read (a parse that stopped early, gzip trailers)."""
        while chunk := self._raw.read(_SKIP_BLOCK):
            self._sha.update(chunk)

    def close(self) -> None:
        self._raw.close()
        super().close()


def _open(path: Path, cap: int, sha: Any) -> tuple[Any, _HashingReader]:
    raw = path.open("rb")
    head = raw.read(2)
    raw.seek(0)
    hashing = _HashingReader(raw, sha)
    inner: Any = (igzip.IGzipFile(  # type: ignore[no-untyped-call]
        fileobj=io.BufferedReader(hashing, buffer_size=_BUFFER)) if head == GZIP_MAGIC
        else hashing)
    return io.BufferedReader(_CappedReader(inner, cap, str(path), hashing),
                             buffer_size=_BUFFER), hashing


def _parse(data: bytes) -> tuple[dict[str, Any] | None, str | None]:
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return None, f"not JSON: {str(exc)[:120]}"
    if not isinstance(doc, dict):
        return None, f"not a JSON object (a {type(doc).__name__})"
    return doc, None


def iter_records(path: str | Path, *, max_line: int = MAX_LINE_BYTES,
                 max_bytes: int = MAX_DECOMPRESSED_BYTES, sha: Any = None) -> Iterator[Record]:
    """Every measurement of one file, in order (module docstring for formats and bounds).

    One JSON object per line (JSONL) or one object in the whole file (pretty-printed JSON):
    decided by the first non-blank line — if it does not parse alone and starts with ``{``,
    the file is one document. Blank lines are not records. Raises :class:`InputError` only
    for whole-file problems (unreadable, truncated gzip, over the decompression cap).
    ``sha`` (a ``hashlib`` object) receives the raw file's bytes, all of them once the
    iteration ends.
    """
    p = Path(path)
    name = str(p)
    try:
        fh, hashing = _open(p, max_bytes, sha if sha is not None else hashlib.sha256())
    except OSError as exc:
        raise InputError(name, None, f"cannot read file: {exc.strerror or exc}") from None
    try:
        yield from _records(fh, name, max_line)
        hashing.drain()
    # isal_zlib.error (IsalError: damaged deflate data) is no OSError (fuzz); its stub
    # declares it an instance, hence the ignore
    except (OSError, EOFError, isal_zlib.error) as exc:  # type: ignore[misc]
        raise InputError(name, None, f"cannot read file: {exc}") from None
    finally:
        fh.close()


def _records(fh: io.BufferedReader, name: str, max_line: int) -> Iterator[Record]:
    lineno = 0
    first = True
    while True:
        line = fh.readline(max_line + 1)
        if not line:
            return
        lineno += 1
        if len(line) > max_line and not line.endswith(b"\n"):
            _discard_rest(fh)
            yield Record(name, lineno, None, f"line longer than {max_line} bytes")
            first = False
            continue
        body = line.strip()
        if first:
            body = body.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark
            line = line.removeprefix(b"\xef\xbb\xbf")
        if not body:
            continue
        if first and _is_yaml_marker(line):
            yield from _yaml_records(fh, name, line, lineno, max_line)
            return
        doc, err = _parse(body)
        if err is not None and first and body.startswith((b"{", b"[")):
            second = fh.readline(max_line + 1)
            doc2, err2 = _parse(second.strip())
            if err2 is None:  # JSONL whose first line is bad: carry on line by line
                yield Record(name, lineno, None, err)
                yield Record(name, lineno + 1, doc2, None)
                lineno += 1
                first = False
                continue
            yield from _whole_document(fh, name, line + second, lineno, max_line)
            return
        first = False
        yield Record(name, lineno, doc, err)


def _whole_document(fh: io.BufferedReader, name: str, head: bytes, lineno: int,
                    max_line: int) -> list[Record]:
    """The rest of the file is one (pretty-printed) JSON document, bounded by ``max_line``:
    an object is one measurement, an array one record per element (all on ``lineno``)."""
    rest = fh.read(max(0, max_line + 1 - len(head)))
    if len(head) + len(rest) > max_line:
        return [Record(name, lineno, None, f"document longer than {max_line} bytes")]
    try:
        doc = orjson.loads(head + rest)
    except orjson.JSONDecodeError as exc:
        return [Record(name, lineno, None, f"not JSON: {str(exc)[:120]}")]
    items = doc if isinstance(doc, list) else [doc]
    return [Record(name, lineno, d, None) if isinstance(d, dict)
            else Record(name, lineno, None, f"not a JSON object (a {type(d).__name__})")
            for d in items]


#: libyaml's C loader when PyYAML was built with it (about 10x the pure-Python one); both
#: are the *safe* loader: no Python object tags from a file we did not write
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _is_yaml_marker(line: bytes) -> bool:
    """A YAML document start ``---`` at column 0 (YAML 1.1 §4.3.1: it cannot occur inside a
    document's content there, so splitting the stream on it is exact)."""
    return line.rstrip(b"\r\n") == b"---" or line.startswith((b"--- ", b"---\t"))


def _yaml_documents(fh: io.BufferedReader, first: bytes, lineno: int,
                    max_line: int) -> Iterator[tuple[int, bytes | None]]:
    """(start line, bytes) per document of the stream; bytes is None for a document over
    ``max_line`` (read through, never held). Split here rather than by
    ``yaml.safe_load_all`` so that one malformed document is one malformed record with its
    own line, not the end of the report."""
    start, chunk, size = lineno, [first], len(first)
    while True:
        line = fh.readline(max_line + 1)
        if not line or _is_yaml_marker(line):
            yield start, (b"".join(chunk) if size <= max_line else None)
            if not line:
                return
            lineno += 1
            start, chunk, size = lineno, [line], len(line)
            continue
        lineno += 1
        size += len(line)
        if size <= max_line:
            chunk.append(line)
        else:
            chunk = []
            if not line.endswith(b"\n"):
                _discard_rest(fh)


def _load_yaml(data: bytes) -> tuple[dict[str, Any] | None, str | None]:
    try:
        doc = yaml.load(data, Loader=_YAML_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc)
        return None, f"not YAML: {str(problem)[:120]}"
    if doc is None:  # an empty document (a trailing ``---``): no record, like a blank line
        return None, None
    if not isinstance(doc, dict):
        return None, f"not a YAML mapping (a {type(doc).__name__})"
    return doc, None


def _yaml_records(fh: io.BufferedReader, name: str, first: bytes, lineno: int,
                  max_line: int) -> Iterator[Record]:
    """A legacy YAML report: the header document's keys merged into every entry by
    :func:`netvigil.sources.ooni.meta.legacy_measurement` (the same shape OONI's pipeline
    gave these reports when it converted them to JSON). A bad header is one malformed record
    and its entries are still read (they then lack the header's keys, so each is flagged)."""
    header: dict[str, Any] | None = None
    doc: dict[str, Any] | None
    err: str | None
    for start, data in _yaml_documents(fh, first, lineno, max_line):
        if data is None:
            doc, err = None, f"document longer than {max_line} bytes"
        else:
            doc, err = _load_yaml(data)
        if header is None:
            header = doc if doc is not None else {}
            if err is not None:
                yield Record(name, start, None, f"report header: {err}")
            continue
        if err is not None:
            yield Record(name, start, None, err)
        elif doc is not None:
            yield Record(name, start, legacy_measurement(header, doc), None)


def _discard_rest(fh: io.BufferedReader) -> None:
    """Read through the rest of an over-long line without keeping it."""
    while True:
        chunk = fh.readline(_SKIP_BLOCK)
        if not chunk or chunk.endswith(b"\n"):
            return


def is_measurement_file(p: Path) -> bool:
    return p.is_file() and p.name.lower().endswith(MEASUREMENT_SUFFIXES)


def bucket_files(root: str | Path) -> list[Path]:
    """Measurement files of OONI's bucket layout under ``root`` (the folder holding ``raw/``,
    or ``raw/`` itself), sorted by path so hours come in order.

    Layout: ``raw/YYYYMMDD/HH/CC/testname/*.jsonl.gz`` (ooni/data tier 0). A folder without
    that layout is an :class:`InputError` (a typo must not import nothing silently).
    """
    base = Path(root)
    if base.name == "raw" and not (base / "raw").is_dir():
        base = base.parent
    if not (base / "raw").is_dir():
        raise InputError(str(root), None, "no raw/YYYYMMDD/HH/CC/testname/ folder below it")
    found = [p for p in base.glob(BUCKET_GLOB) if is_measurement_file(p)
             and all(_BUCKET_PARTS.match(x) for x in p.relative_to(base).parts[1:3])]
    return sorted(found)


def expand(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; a folder stands for every file below it (recursively, sorted) except
    hidden files and ``README*``: a file of another format is read and flagged, never
    skipped unseen."""
    out: list[Path] = []
    for item in paths:
        p = Path(item)
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.is_file()
                              and not q.name.startswith((".", "README"))))
        else:
            out.append(p)
    return out
