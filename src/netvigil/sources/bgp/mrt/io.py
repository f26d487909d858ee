"""Open MRT files: plain, gzip or bzip2, recognised by magic bytes rather than by name.

gzip is decoded by ISA-L (the optional ``isal`` package, ≈3× zlib's speed) when it is installed,
else by zlib; :class:`Prefetch` runs the decoder on a second thread (both release the GIL) so
that decompression overlaps with parsing.

bzip2 is the slow case (issue 3 item 1: ≈480k elements/s with ``bzcat``); when the optional
``indexed_bzip2`` package is installed its parallel decoder is used, otherwise the standard
library's. Both gzip and bzip2 archives cut short (the pyasn "first MiB" files) are read up to
the cut: :class:`MrtStream` reports ``compressed_truncated`` instead of raising, and the record
reader turns the partial last record into a counted :class:`TruncatedRecord`.
"""

from __future__ import annotations

import bz2
import io
import os
import queue
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from netvigil.model import bounds
from netvigil.sources.bgp.mrt.errors import CorruptRecord, MrtError, TruncatedRecord

_gzip_zlib: Any = zlib
try:  # ISA-L inflate: same API as zlib, ~3x faster (issue 3: "half of what decompression allows")
    from isal import isal_zlib as _isal_zlib  # type: ignore[import-not-found,unused-ignore]

    _gzip_zlib = _isal_zlib
except ImportError:  # pragma: no cover - isal is optional
    pass
_GZIP_ERRORS: tuple[type[BaseException], ...] = (OSError, zlib.error, EOFError, _gzip_zlib.error)

GZIP_MAGIC = b"\x1f\x8b"
BZIP2_MAGIC = b"BZh"


class _Decompressor:
    """Incremental gzip/bzip2 decoding over raw chunks: multi-member aware, and a cut-off
    stream yields everything decoded before the cut (``truncated`` is then set)."""

    def __init__(self, raw: BinaryIO, kind: str, raw_chunk: int = 1 << 18) -> None:
        self._raw = raw
        self._kind = kind
        self._chunk = raw_chunk
        self._obj = self._new()
        self.truncated = False
        self._done = False

    def _new(self) -> Any:
        if self._kind == "gzip":
            if os.environ.get("NETVIGIL_NO_ISAL"):
                return zlib.decompressobj(16 + zlib.MAX_WBITS)
            return _gzip_zlib.decompressobj(16 + zlib.MAX_WBITS)
        return bz2.BZ2Decompressor()

    def read(self, n: int) -> bytes:
        out: list[bytes] = []
        size = 0
        while size < n and not self._done:
            raw = self._raw.read(self._chunk)
            if not raw:
                self._done = True
                if self._kind == "gzip":
                    tail = self._obj.flush()
                    if tail:
                        out.append(tail)
                if not self._obj.eof and self._started:
                    self.truncated = True
                break
            self._started = True
            while raw:
                try:
                    piece = self._obj.decompress(raw)
                except _GZIP_ERRORS:
                    self.truncated = True
                    self._done = True
                    break
                out.append(piece)
                size += len(piece)
                if self._obj.eof:
                    raw = self._obj.unused_data
                    self._obj = self._new()
                    self._started = bool(raw)
                else:
                    raw = b""
        return b"".join(out)

    _started = False

    def close(self) -> None:
        self._done = True


class MrtStream:
    """A readable, decompressing byte stream that survives a truncated compressed tail."""

    def __init__(self, raw: BinaryIO, name: str, threads: int | None = None) -> None:
        self.name = name
        self.compression = "none"
        head = raw.read(3)
        raw.seek(0)
        self._raw = raw
        self._inner: Any = raw
        self._out = 0  # decompressed bytes handed out (the decompression bound)
        self.inflated = ""  # set to the reason when the bound stopped the stream
        if head[:2] == GZIP_MAGIC:
            self.compression = "gzip"
            self._inner = _Decompressor(raw, "gzip")
        elif head == BZIP2_MAGIC:
            self.compression = "bzip2"
            self._inner = _open_bz2(raw, threads)

    @property
    def compressed_truncated(self) -> bool:
        """The stream stopped early: cut short, or refused by the decompression bound."""
        return bool(self.inflated) or bool(getattr(self._inner, "truncated", False))

    def cut_error(self, offset: int) -> MrtError:
        """The error that describes an early stop (:attr:`compressed_truncated`), for the
        reader to raise (``fail``) or count (``skip``)."""
        if self.inflated:
            return CorruptRecord(offset, self.inflated, self.name)
        return TruncatedRecord(offset, f"{self.compression} stream ends early", self.name)

    def read(self, n: int) -> bytes:
        """Up to ``n`` decompressed bytes; b"" at the end, or once the decompression bound of
        :mod:`netvigil.model.bounds` is passed (rule ``decompression-bound``: a gzip or
        bzip2 bomb is never expanded whole; the readers report :meth:`cut_error`)."""
        if self.inflated:
            return b""
        data: bytes = self._inner.read(n)
        if self.compression != "none":
            self._out += len(data)
            try:
                consumed = self._raw.tell()
            except (OSError, ValueError, AttributeError):
                consumed = self._out  # position unknown: no ratio to judge
            if bounds.inflation_exceeded(consumed, self._out):
                self.inflated = (f"{self.compression}: "
                                 f"{bounds.inflation_text(consumed, self._out)}")
                return b""
        return data

    def close(self) -> None:
        try:
            if self._inner is not self._raw:
                self._inner.close()
        finally:
            self._raw.close()

    def __enter__(self) -> MrtStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_bz2(raw: BinaryIO, threads: int | None) -> Any:
    """Parallel ``indexed_bzip2`` when installed and the file is seekable, else incremental."""
    try:
        import indexed_bzip2  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return _Decompressor(raw, "bzip2")
    n = threads if threads is not None else max(1, (os.cpu_count() or 1))
    return _ParallelBz2(indexed_bzip2.open(raw, parallelization=n))


class _ParallelBz2:
    """indexed_bzip2 raises on a cut stream; keep what was decoded and flag truncation."""

    def __init__(self, f: Any) -> None:
        self._f = f
        self.truncated = False

    def read(self, n: int) -> bytes:
        if self.truncated:
            return b""
        try:
            data: bytes = self._f.read(n)
            return data
        except Exception:  # noqa: BLE001 - any decoder failure means "stream ends here"
            self.truncated = True
            return b""

    def close(self) -> None:
        self._f.close()


class Prefetch:
    """Iterate ``stream.read(size)`` chunks decoded ahead on a background thread.

    At most ``depth`` chunks wait in the queue, so memory stays bounded. Exceptions raised by
    the reader thread are re-raised in the consumer; ``close`` (or leaving the ``with`` block)
    stops the thread before the stream is closed.
    """

    def __init__(self, stream: MrtStream, size: int, depth: int = 2) -> None:
        self._q: queue.Queue[bytes | BaseException] = queue.Queue(depth)
        self._stop = threading.Event()
        self._stream = stream
        self._size = size
        self._t = threading.Thread(target=self._run, name="mrt-prefetch", daemon=True)
        self._t.start()

    def _put(self, item: bytes | BaseException) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            while True:
                data = self._stream.read(self._size)
                if not self._put(data) or not data:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            self._put(exc)

    def __iter__(self) -> Iterator[bytes]:
        while True:
            item = self._q.get()
            if isinstance(item, BaseException):
                raise item
            if not item:
                return
            yield item

    def close(self) -> None:
        self._stop.set()
        self._t.join()

    def __enter__(self) -> Iterator[bytes]:
        return iter(self)

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_mrt(source: str | Path | bytes | BinaryIO, threads: int | None = None) -> MrtStream:
    """Open a path, raw bytes or a binary file object as a decompressed MRT byte stream."""
    if isinstance(source, bytes | bytearray):
        return MrtStream(io.BytesIO(bytes(source)), "<bytes>", threads)
    if isinstance(source, str | Path):
        path = Path(source)
        return MrtStream(open(path, "rb"), str(path), threads)  # noqa: SIM115
    return MrtStream(source, getattr(source, "name", "<stream>"), threads)
