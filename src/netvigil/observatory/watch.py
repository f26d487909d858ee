"""Watched folders: files dropped in are ingested exactly once each, whatever their name.

*Arrival.* A file has arrived when its (size, mtime) has not changed for ``settle_seconds``
(the rule of incron/inotify-less spool readers such as Postfix's ``maildrop`` pickup or
logstash's file input ``stat_interval``): a writer still copying it changes one or the other.
Writers that can should still write ``name.tmp`` and rename; dot files, ``*.tmp``,
``*.part`` and sub-folders are never read.

*Format by content*, not by name (:func:`sniff`): MRT (a 12-byte header with a known RFC 6396
type), an IODA ``signals/raw`` JSON envelope (``{`` or ``[``), or a series CSV (a header
naming ``time``); gzip and bzip2 are looked through.

*Exactly once.* Each file is keyed by ``watch:<path>:<size>:<sha256>`` in the store's
``state`` table, written in the same transaction as the file's points, so a crash before
the commit re-ingests the file and a crash after it never does. A file whose content
changes gets a new key and is ingested again (series writes are upserts: no double count).

*Bad files* never stop the loop: the error (``file:line: reason``) is logged, recorded under
the file's key with ``status = failed``, and the file is moved to ``<dir>/failed/`` so it is
not retried until someone fixes and drops it again.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import json
import shutil
import struct
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from netvigil.model import ErrorPolicy, InputError
from netvigil.store import SeriesStore

#: RFC 6396 §4 (and RFC 8050) record types a dropped MRT file may start with.
MRT_TYPES = frozenset({11, 12, 13, 16, 17, 32, 33, 48, 49})
MRT_MAX_RECORD = 16 << 20
IGNORED_SUFFIXES = (".tmp", ".part", ".partial", ".swp")
FAILED_DIR = "failed"
KEY_PREFIX = "watch:"
_HEAD = 4096


def _head(path: Path, n: int = _HEAD) -> bytes:
    """The first ``n`` bytes of the file's content, looking through gzip and bzip2."""
    with path.open("rb") as fh:
        raw = fh.read(n)
    opener: Callable[..., Any] | None = None
    if raw[:2] == b"\x1f\x8b":
        opener = gzip.open
    elif raw[:3] == b"BZh":
        opener = bz2.open
    if opener is None:
        return raw
    try:
        with opener(path, "rb") as fh:
            return bytes(fh.read(n))
    except (EOFError, OSError, zlib.error, ValueError):
        return b""  # a corrupt archive: no format, reported as such


def _looks_mrt(head: bytes) -> bool:
    if len(head) < 12:
        return False
    _ts, typ, _sub, length = struct.unpack_from(">IHHI", head)
    return typ in MRT_TYPES and length <= MRT_MAX_RECORD


def sniff(path: Path) -> str | None:
    """``"mrt"``, ``"ioda"``, ``"csv"`` or None (not a format the observatory reads)."""
    head = _head(path)
    if _looks_mrt(head):
        return "mrt"
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if text[:1] in (b"{", b"["):
        return "ioda"
    first = text.split(b"\n", 1)[0].decode("utf-8", "replace").strip().lower()
    if "time" in {c.strip().strip('"') for c in first.split(",")}:
        return "csv"
    return None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_key(path: Path, size: int, sha256: str) -> str:
    """The exactly-once key of a dropped file (path + size + content digest)."""
    return f"{KEY_PREFIX}{path.resolve()}:{size}:{sha256}"


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    since: float  # monotonic time this (size, mtime) was first seen


class Watcher:
    """Tracks the files of some folders until their size and mtime settle."""

    def __init__(self, dirs: Sequence[Path], settle_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.dirs = tuple(dirs)
        self.settle = settle_seconds
        self.clock = clock
        self._seen: dict[Path, _Seen] = {}
        self._handled: dict[Path, tuple[int, int]] = {}  # path -> (size, mtime) ingested

    def ensure_dirs(self) -> None:
        for d in self.dirs:
            d.mkdir(parents=True, exist_ok=True)

    def poll(self) -> None:
        """Stat every candidate file once; restart the settle clock of any that changed."""
        now = self.clock()
        present: set[Path] = set()
        for d in self.dirs:
            try:
                entries = list(d.iterdir())
            except OSError:
                continue
            for p in entries:
                if p.name.startswith(".") or p.name.endswith(IGNORED_SUFFIXES):
                    continue
                try:
                    st = p.stat()
                except OSError:
                    continue
                if not p.is_file():
                    continue
                present.add(p)
                old = self._seen.get(p)
                if old is None or (old.size, old.mtime_ns) != (st.st_size, st.st_mtime_ns):
                    self._seen[p] = _Seen(st.st_size, st.st_mtime_ns, now)
        for gone in set(self._seen) - present:
            del self._seen[gone]
            self._handled.pop(gone, None)

    def arrived(self) -> list[Path]:
        """Files settled for ``settle_seconds`` and not yet handled in this process, oldest
        first (mtime, then name), so a national series and then its cut go in that order."""
        now = self.clock()
        out = [(s.mtime_ns, p.name, p) for p, s in self._seen.items()
               if now - s.since >= self.settle
               and self._handled.get(p) != (s.size, s.mtime_ns)]
        return [p for _m, _n, p in sorted(out)]

    def pending(self) -> int:
        return sum(1 for p, s in self._seen.items()
                   if self._handled.get(p) != (s.size, s.mtime_ns))

    def handled(self, path: Path) -> None:
        s = self._seen.get(path)
        if s is not None:
            self._handled[path] = (s.size, s.mtime_ns)


@dataclass
class FileOutcome:
    path: Path
    key: str
    status: str  # "done" | "failed" | "already"
    format: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    line: int | None = None
    moved_to: Path | None = None


S = TypeVar("S", bound=SeriesStore)
# (store, path, format, policy) -> summary fields; the run loop supplies one per format
FileIngest = Callable[[S, Path, str, ErrorPolicy], dict[str, Any]]


def _move_failed(path: Path) -> Path | None:
    target_dir = path.parent / FAILED_DIR
    try:
        target_dir.mkdir(exist_ok=True)
        target = target_dir / path.name
        n = 1
        while target.exists():
            target = target_dir / f"{path.stem}.{n}{path.suffix}"
            n += 1
        shutil.move(str(path), str(target))
        return target
    except OSError:
        return None


def ingest_files(store: S, paths: Iterable[Path], ingest: dict[str, FileIngest[S]],
                 policy: ErrorPolicy, *, move_failed: bool,
                 on_failure: Callable[[], None] | None = None) -> list[FileOutcome]:
    """Ingest each arrived file once (see the module docstring); never raises for a file.

    ``ingest[fmt](store, path, fmt, policy)`` does the writing; it runs inside one store
    transaction together with the file's state key. ``on_failure`` lets the caller drop
    whatever the failed file left in memory (the pipeline's unflushed batches).
    """
    out: list[FileOutcome] = []
    for path in paths:
        try:
            size = path.stat().st_size
            digest = sha256_file(path)
        except OSError as exc:
            out.append(FileOutcome(path, "", "failed", error=f"{path}: cannot read: {exc}"))
            continue
        key = file_key(path, size, digest)
        if store.get_state(key) is not None:
            out.append(FileOutcome(path, key, "already"))
            continue
        fmt = sniff(path)
        try:
            if fmt is None:
                raise InputError(str(path), None, "not a format the observatory reads (MRT, "
                                 "a series CSV with a time column, or IODA signals/raw JSON)")
            with store.transaction():
                detail = ingest[fmt](store, path, fmt, policy)
                store.set_state(key, json.dumps({"status": "done", "format": fmt,
                                                 "size": size, "at": int(time.time()),
                                                 **detail}, sort_keys=True))
            out.append(FileOutcome(path, key, "done", fmt, detail))
        except Exception as exc:  # noqa: BLE001 - a bad file must never stop the loop
            if on_failure is not None:
                on_failure()
            line = exc.line if isinstance(exc, InputError) else None
            text = str(exc) if isinstance(exc, InputError) else (
                f"{path}: {type(exc).__name__}: {exc}")
            moved = _move_failed(path) if move_failed else None
            with store.transaction():
                store.set_state(key, json.dumps({
                    "status": "failed", "format": fmt, "size": size, "error": text,
                    "at": int(time.time()), "moved_to": str(moved) if moved else None},
                    sort_keys=True))
            out.append(FileOutcome(path, key, "failed", fmt, error=text, line=line,
                                   moved_to=moved))
    return out
