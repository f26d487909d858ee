"""``netvigil ooni import``: files of raw measurements -> verdicts -> facts into a FactSink.

Each record is read (:mod:`.reader`), its base keys checked (:mod:`.meta`), judged
(:func:`.verdict.verdict`) and added to a :class:`.facts.FactBuilder`; the facts are emitted
only after every file was read, so with ``ErrorPolicy.FAIL`` the first malformed record
raises :class:`~netvigil.model.InputError` (``file:line: reason``) before anything reaches the
sink, and with ``SKIP`` every malformed record is counted by reason with its first lines
(never dropped silently, never fatal to the batch). A measurement seen twice in one import
(same ``measurement_uid``, or same report, test, input and start time: OONI's own fixtures
ship such copies) is counted once and reported as a duplicate. Whole-file problems
(unreadable file, truncated gzip, over the decompression cap) fail the import under
``FAIL``; under ``SKIP`` the file counts as one malformed record (its measurements read
before the damage are kept: each was a whole, valid record) and the batch goes on — a
bucket of thousands of files is not lost to one truncated upload.

The caller owns the store: it flushes the sink and writes the ``imports`` row
(from :attr:`OoniImport.files`) in one transaction (``netvigil.cli.ooni_cmd``).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from netvigil.model import ErrorPolicy, InputError
from netvigil.sources.ooni.facts import FactBuilder, ledger_row
from netvigil.sources.ooni.meta import MetaError, read_meta
from netvigil.sources.ooni.reader import MAX_DECOMPRESSED_BYTES, MAX_LINE_BYTES, iter_records
from netvigil.sources.ooni.verdict import verdict

MAX_EXAMPLES = 5


@dataclass
class Malformed:
    """Malformed records per reason, with the first few ``file:line`` of each."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def add(self, reason: str, where: str) -> None:
        category = reason.split(":")[0].split(" (")[0][:80]
        self.counts[category] += 1
        ex = self.examples.setdefault(category, [])
        if len(ex) < MAX_EXAMPLES:
            ex.append(where)

    def lines(self) -> list[str]:
        return [f"  {c}: {n} (first at {', '.join(self.examples[c])})"
                for c, n in sorted(self.counts.items())]


@dataclass(frozen=True)
class FileResult:
    path: str
    sha256: str
    records: int
    accepted: int
    malformed: int


@dataclass
class OoniImport:
    """What one import read and judged (counts per test name and outcome)."""

    files: list[FileResult] = field(default_factory=list)
    malformed: Malformed = field(default_factory=Malformed)
    by_test: Counter[str] = field(default_factory=Counter)
    by_outcome: Counter[str] = field(default_factory=Counter)
    unattributed: int = 0
    duplicates: int = 0  # the same measurement again (counted once)
    facts: int = 0

    @property
    def measurements(self) -> int:
        return sum(self.by_test.values())

    def text(self) -> str:
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(self.by_outcome.items()))
        return (f"{len(self.files)} file(s): {self.measurements} measurements accepted "
                f"({len(self.by_test)} test names; {outcomes or 'no verdicts'}), "
                f"{self.malformed.total} malformed, {self.duplicates} duplicate(s), "
                f"{self.unattributed} without a country, "
                f"{self.facts} facts")


def _where(exc: InputError) -> str:
    return str(exc.line) if exc.line is not None else "file"


def _file_sha256(path: Path) -> Any:
    sha = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                sha.update(chunk)
    except OSError:
        pass  # unreadable: the digest of what could be read (the reason is in the report)
    return sha


def identity(doc: dict[str, Any]) -> tuple[str, ...]:
    """What makes two records the same measurement: OONI's ``measurement_uid`` if the
    server assigned one, else (report, test, input, start time), else the sha256 of its
    canonical JSON (sorted keys, compact: the collector's and the probe's content hash).
    It keys the store's ledger too, so a measurement counts once across imports."""
    uid = doc.get("measurement_uid")
    if isinstance(uid, str) and uid:
        return ("uid", uid)
    rid = doc.get("report_id")
    if isinstance(rid, str) and rid:
        return (rid, str(doc.get("test_name")), repr(doc.get("input")),
                str(doc.get("measurement_start_time")))
    canon = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                       default=str)
    return ("sha256", hashlib.sha256(canon.encode("utf-8", "surrogatepass")).hexdigest())


#: below this many files, or this many bytes on disk, an import is judged in this process:
#: forking workers costs more than it saves (a pool of 2 starts and stops in ~0.02 s, then
#: every judged row crosses a pipe before it is folded here; 8 MiB of gzip is ~6,000
#: measurements, ~0.4 s of judging), and small imports (tests, one probe upload) never fork
#: (rules ``ooni.import.parallel-min-files`` / ``ooni.import.parallel-min-bytes``)
PARALLEL_MIN_FILES = 8
PARALLEL_MIN_BYTES = 8 << 20
#: files handed to a worker at a time: the bucket's files are small (one hour, one country,
#: one test), so one at a time would cost a round trip per ~50 measurements
PARALLEL_CHUNK_FILES = 4

#: one record as judged: ``("ok", identity, test name, outcome or "no-verdict",
#: ledger row or None)`` (:func:`~netvigil.sources.ooni.facts.ledger_row`: plain values, so
#: a worker's result pickles cheaply) or ``("bad", reason, line)``
Judged = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class JudgedFile:
    """One file read and judged, not yet folded: what a worker hands back. ``error`` is the
    first malformed record's ``(path, line, reason)`` under ``ErrorPolicy.FAIL`` (the file
    ends there; an :class:`InputError` is raised when the fold reaches it, in file order)."""

    path: str
    sha256: str
    records: int
    entries: list[Judged]
    error: tuple[str, int | None, str] | None = None


def judge_file(path: str | Path, policy: ErrorPolicy | str, *,
               max_line: int = MAX_LINE_BYTES,
               max_bytes: int = MAX_DECOMPRESSED_BYTES) -> JudgedFile:
    """Read one file and judge each record (base keys, identity, verdict), in order. The
    part of an import that costs per byte and needs nothing from other files, so it can
    run in a worker process (:func:`read_measurements` ``jobs``)."""
    pol = ErrorPolicy(policy)
    p = Path(path)
    sha = hashlib.sha256()
    records = 0
    entries: list[Judged] = []
    try:
        for rec in iter_records(p, max_line=max_line, max_bytes=max_bytes, sha=sha):
            records += 1
            reason = rec.error
            if rec.doc is not None:
                try:
                    meta = read_meta(rec.doc)
                except MetaError as exc:
                    reason = str(exc)
                else:
                    key = identity(rec.doc)
                    v = verdict(rec.doc)
                    entries.append(("ok", key, meta.test_name,
                                    v.outcome.value if v.outcome else "no-verdict",
                                    ledger_row(meta, v, key)))
                    continue
            if pol is ErrorPolicy.FAIL:
                return JudgedFile(str(p), "", records, entries,
                                  (str(p), rec.line, reason or "malformed"))
            entries.append(("bad", reason or "malformed", rec.line))
    except InputError as exc:  # a whole-file problem (truncated gzip, cap, ...)
        if pol is ErrorPolicy.FAIL:
            return JudgedFile(str(p), "", records, entries, (exc.path, exc.line, exc.reason))
        entries.append(("bad", exc.reason, _where(exc)))
        sha = _file_sha256(p)  # the parse stopped: hash the raw file on its own
    return JudgedFile(str(p), sha.hexdigest(), records, entries)


def fold(judged: JudgedFile, builder: FactBuilder, out: OoniImport,
         seen: set[tuple[str, ...]]) -> None:
    """Add one judged file to the import, in file order: a measurement already ``seen``
    (this import) is a duplicate, the others go to ``builder``; malformed records are
    counted by reason. Raises the file's :attr:`JudgedFile.error` (fail policy)."""
    name = Path(judged.path).name
    accepted = bad = 0
    for entry in judged.entries:
        if entry[0] == "ok":
            _ok, key, test_name, outcome, row = entry
            if key in seen:
                out.duplicates += 1
                continue
            seen.add(key)
            builder.add_row(row)
            out.by_test[test_name] += 1
            out.by_outcome[outcome] += 1
            accepted += 1
        else:
            out.malformed.add(entry[1], f"{name}:{entry[2]}")
            bad += 1
    if judged.error is not None:
        raise InputError(*judged.error)
    out.files.append(FileResult(judged.path, judged.sha256, judged.records, accepted, bad))


def read_measurements(paths: Iterable[str | Path], policy: ErrorPolicy | str,
                      builder: FactBuilder, *, max_line: int = MAX_LINE_BYTES,
                      max_bytes: int = MAX_DECOMPRESSED_BYTES, jobs: int = 1) -> OoniImport:
    """Read and judge every measurement of ``paths`` into ``builder`` (module docstring).

    ``jobs`` > 1 judges the files in that many forked worker processes
    (:func:`judge_file`: decompressing, parsing and judging are per record and need nothing
    from other files) while this process folds their results in file order
    (:func:`fold`): duplicates, counts, the first malformed record under ``fail`` and the
    builder are exactly those of one process. Fewer than :data:`PARALLEL_MIN_FILES` files
    or :data:`PARALLEL_MIN_BYTES` are judged here."""
    pol = ErrorPolicy(policy)
    files = [Path(p) for p in paths]
    out = OoniImport()
    seen: set[tuple[str, ...]] = set()
    judge = partial(judge_file, policy=pol, max_line=max_line, max_bytes=max_bytes)
    if jobs > 1 and len(files) >= PARALLEL_MIN_FILES and _size(files) >= PARALLEL_MIN_BYTES:
        # fork: the workers inherit the loaded modules and fingerprint index (no re-import);
        # the caller has opened no store yet (DuckDB's threads must not be forked)
        with multiprocessing.get_context("fork").Pool(min(jobs, len(files))) as pool:
            for judged in pool.imap(judge, files, chunksize=PARALLEL_CHUNK_FILES):
                fold(judged, builder, out, seen)
    else:
        for p in files:
            fold(judge(p), builder, out, seen)
    out.unattributed = builder.unattributed
    return out


def _size(files: Iterable[Path]) -> int:
    """Bytes on disk (a file that cannot be read counts 0: judging reports it)."""
    total = 0
    for p in files:
        try:
            total += p.stat().st_size
        except OSError:
            pass
    return total
