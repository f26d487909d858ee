"""``netvigil ooni import --engine dask``: files judged and folded per chunk on workers,
chunks merged in file order on the driver.

Why the result cannot be a plain sum of per-chunk points: the OONI facts are sums over
every file of an import, ``ooni-volume`` is zero-filled up to the *import's* last hour, and a
measurement seen twice in one import (another file, another chunk) counts once
(:func:`netvigil.sources.ooni.importer.identity`). What is expensive — decompressing, parsing
JSON, :func:`~netvigil.sources.ooni.meta.read_meta` and
:func:`~netvigil.sources.ooni.verdict.verdict` — is per record and independent, so each
worker judges a **contiguous chunk** of the file list, folds it exactly as
:func:`~netvigil.sources.ooni.importer.read_measurements` folds records (:class:`Fold`:
duplicates inside the chunk skipped, :meth:`FactBuilder.add_row`, counts per test and
outcome, malformed records by reason) and writes the fold's sums (ledger rows included),
the chunk's measurement identities and per file its counts and malformed records (reason
and line: :func:`netvigil.sources.ooni.importer.judge_file`). The driver takes chunks in
order: one that repeats no measurement of an earlier chunk is merged (sums added per
cell); one that does is judged again on the driver and folded record by record. Then it emits into
the one pipeline like the single-process import (same points, entities, one ``imports``
row). The tests compare both on the shared OONI fixtures (a duplicate across chunks, a
malformed file, a record without a country) and on a bucket whose chunks share cells.

Why the fold moved to the workers: the driver's record-by-record fold ran at about a third
of the judging rate per core, serially, on the same two cores as the workers; two workers
were then held back by one driver (docs/scaling.md section 1). A merge costs per cell
(hour x network x platform), not per record.

Resume and faults: a chunk's judged records are written as one JSON file (temporary file,
fsync, rename) named by the chunk's position and the digest of its paths, sizes and mtimes;
a chunk whose file is present is done and not read again when an interrupted import is
re-run. A task lost with a worker is rerun by Dask and rewrites the same file. The work
folder is removed once the store has the import.

With ``--on-error fail`` the first malformed record in file order fails the import, as in
one process: each chunk stops at its first one and the earliest chunk's is raised.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netvigil.distributed.engine import Echo, report_progress, roomy_malloc, task_key
from netvigil.model import ErrorPolicy, InputError
from netvigil.sources.ooni import importer
from netvigil.sources.ooni.facts import FactBuilder
from netvigil.sources.ooni.importer import FileResult, OoniImport

if TYPE_CHECKING:
    from distributed import Client


#: the chunk file's layout, in its name: a chunk an older NetVigil wrote is judged again
CHUNK_FORMAT = "v4"


def chunks(paths: Sequence[Path], per_chunk: int) -> list[list[Path]]:
    """Contiguous runs of ``per_chunk`` files of the list, in its order."""
    n = max(1, per_chunk)
    return [list(paths[i:i + n]) for i in range(0, len(paths), n)]


def chunk_name(index: int, paths: Sequence[Path]) -> str:
    """Position and digest of the chunk's paths with their sizes and mtimes: a file changed
    since an interrupted run makes a new chunk, never a stale resume."""
    def ident(p: Path) -> str:
        st = p.stat()
        return f"{p}\t{st.st_size}\t{st.st_mtime_ns}"

    digest = hashlib.sha256("\n".join(ident(p) for p in paths).encode()).hexdigest()[:16]
    return f"chunk-{CHUNK_FORMAT}-{index:06d}-{digest}.json"


def judge_file(path: Path, policy: ErrorPolicy) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """One file judged by the single-process importer's :func:`importer.judge_file` (one
    reading and judging path for both engines), as JSON for the chunk file: its records in
    order (``["ok", identity, test name, outcome, ledger row]`` or ``["bad", reason,
    line]``); under ``fail`` instead its first malformed record as ``{path, line,
    reason}``. A whole-file problem (truncated gzip, size cap) ends the file as in
    ``read_measurements``."""
    judged = importer.judge_file(path, policy)
    if judged.error is not None:
        where, line, reason = judged.error
        return {}, {"path": where, "line": line, "reason": reason}
    rows = [["ok", list(e[1]) if e[1] is not None else None, e[2], e[3],
             list(e[4]) if e[4] is not None else None] if e[0] == "ok" else list(e)
            for e in judged.entries]
    return {"path": judged.path, "sha256": judged.sha256, "records": judged.records,
            "rows": rows}, None


def judge_chunk(paths: list[str], policy: str, target: str) -> dict[str, Any] | None:
    """On a worker: judge ``paths``, fold them (:meth:`Fold.summary`) and write the chunk
    file. Returns None, or the first malformed record's ``{path, line, reason}`` under the
    fail policy (an ``InputError`` would not survive the trip back: it takes three
    arguments)."""
    pol = ErrorPolicy(policy)
    files = []
    with roomy_malloc():  # a fresh page per decoded body otherwise, under Dask's nanny
        for p in paths:
            doc, error = judge_file(Path(p), pol)
            if error is not None:
                return error
            files.append(doc)
    local = Fold()
    for doc in files:
        local.file(doc)
    out = Path(target)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            # json.dumps, not json.dump: dump to a file runs the pure-Python encoder
            # (a quarter of a chunk's time under cProfile), dumps the C one; the same text
            fh.write(json.dumps({"files": [_file_meta(doc) for doc in files],
                                 "fold": local.summary()}))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return None


def _file_meta(doc: dict[str, Any]) -> dict[str, Any]:
    """What the driver's merge needs of a judged file: its identity and counts and its
    malformed records (reason, line), not its accepted records, whose ledger rows are in
    the fold's sums already. A chunk that must be refolded is judged again on the driver
    (:meth:`Fold.chunk`): carrying every record to the driver for the rare refold was half
    the chunk file's bytes and of the driver's serial parse (docs/scaling.md, "OONI chunk
    files")."""
    return {"path": doc["path"], "sha256": doc["sha256"], "records": doc["records"],
            "bad": [row[1:] for row in doc["rows"] if row[0] == "bad"]}


def _cells(b: FactBuilder) -> dict[str, list[list[Any]]]:
    """A builder's sums as JSON lists, in its dicts' order (so a merge rebuilds the dicts in
    the order one process would have filled them)."""
    return {
        "counts": [[h, p, cc, asn, cell] for (h, p), cols in b.counts.items()
                   for (cc, asn), cell in cols.items()],
        "volume": [[cc, asn, h, n] for (cc, asn), hours in b.volume.items()
                   for h, n in hours.items()],
        "blocked": [[p, m, h, cc, asn, n] for (p, m), cells in b.blocked.items()
                    for (h, (cc, asn)), n in cells.items()],
        "tls": [[p, h, cc, asn, v] for p, cells in b.tls.items()
                for (h, (cc, asn)), v in cells.items()],
        "speed": [[p, h, cc, asn, v] for p, cells in b.speed.items()
                  for (h, (cc, asn)), v in cells.items()],
        "networks": [[asn, name, cc] for asn, (name, cc) in b.networks.items()],
        "rows": [list(r) for r in b.rows],
    }


def _merge_cells(b: FactBuilder, doc: dict[str, list[list[Any]]], unattributed: int) -> None:
    """Add a later chunk's sums to ``b``: what :meth:`FactBuilder.add_cell` would have done
    record by record (counts and volumes add, handshake and speed samples append, an AS's
    network name is the last non-empty one seen, ledger rows append)."""
    for h, p, cc, asn, cell in doc["counts"]:
        cur = b.counts[(h, p)].setdefault((cc, asn), [0, 0, 0, 0])
        for i, n in enumerate(cell):
            cur[i] += n
    for cc, asn, h, n in doc["volume"]:
        vol = b.volume[(cc, asn)]
        vol[h] = vol.get(h, 0) + n
    for p, m, h, cc, asn, n in doc["blocked"]:
        per = b.blocked[(p, m)]
        per[(h, (cc, asn))] = per.get((h, (cc, asn)), 0) + n
    for p, h, cc, asn, v in doc["tls"]:
        b.tls[p][(h, (cc, asn))].extend(v)
    for p, h, cc, asn, v in doc["speed"]:
        b.speed[p][(h, (cc, asn))].extend(v)
    for asn, name, cc in doc["networks"]:
        if name or asn not in b.networks:
            b.networks[asn] = (name, cc)
    b.rows.extend(tuple(r) for r in doc["rows"])
    b.unattributed += unattributed


class Fold:
    """``read_measurements``'s loop over judged records in file order, in two halves.

    Each worker folds its own chunk (:meth:`file`, then :meth:`summary`: the builder's sums,
    the counts and the chunk's measurement identities). The driver takes chunks in order
    (:meth:`chunk`): a chunk none of whose identities an earlier chunk had (the usual case)
    is **merged** (its sums added: work per cell, not per record); otherwise its records are
    folded again one by one, which counts the repeats as duplicates exactly as one process
    does. Either way the result is the single-process one; the merge keeps the driver's
    serial part small, so two workers are not held back by one driver (docs/scaling.md
    section 1)."""

    def __init__(self) -> None:
        self.builder = FactBuilder()
        self.result = OoniImport()
        self._seen: set[tuple[str, ...]] = set()

    def file(self, doc: dict[str, Any]) -> None:
        out, name = self.result, Path(doc["path"]).name
        accepted = bad = 0
        for row in doc["rows"]:
            if row[0] == "bad":
                out.malformed.add(row[1], f"{name}:{row[2]}")
                bad += 1
                continue
            key = tuple(row[1]) if row[1] is not None else None
            if key is not None and key in self._seen:
                out.duplicates += 1
                continue
            if key is not None:
                self._seen.add(key)
            _ok, _key, test_name, outcome, ledger_row = row
            self.builder.add_row(tuple(ledger_row) if ledger_row is not None else None)
            out.by_test[test_name] += 1
            out.by_outcome[outcome] += 1
            accepted += 1
        out.files.append(FileResult(doc["path"], doc["sha256"], doc["records"], accepted, bad))
        out.unattributed = self.builder.unattributed

    def summary(self) -> dict[str, Any]:
        """This (worker's) fold of one chunk, as JSON: what :meth:`chunk` merges."""
        r = self.result
        return {"cells": _cells(self.builder), "unattributed": self.builder.unattributed,
                "by_test": dict(r.by_test), "by_outcome": dict(r.by_outcome),
                "duplicates": r.duplicates, "accepted": [f.accepted for f in r.files],
                "keys": [list(k) for k in self._seen]}

    def chunk(self, doc: dict[str, Any], policy: ErrorPolicy) -> None:
        """The next chunk in order: merged, or refolded if it repeats an earlier one's
        measurement (class docstring): its files judged again here, by the same
        :func:`judge_file` the workers ran, and folded record by record."""
        s = doc["fold"]
        keys = [tuple(k) for k in s["keys"]]
        if not self._seen.isdisjoint(keys):
            for f in doc["files"]:
                full, error = judge_file(Path(f["path"]), policy)
                if error is not None:  # the file changed since a worker judged it
                    raise InputError(error["path"], error["line"], error["reason"])
                self.file(full)
            return
        self._seen.update(keys)
        _merge_cells(self.builder, s["cells"], s["unattributed"])
        out = self.result
        for f, accepted in zip(doc["files"], s["accepted"], strict=True):
            name = Path(f["path"]).name
            for reason, line in f["bad"]:
                out.malformed.add(reason, f"{name}:{line}")
            out.files.append(FileResult(f["path"], f["sha256"], f["records"], accepted,
                                        len(f["bad"])))
        out.by_test.update(s["by_test"])
        out.by_outcome.update(s["by_outcome"])
        out.duplicates += s["duplicates"]
        out.unattributed = self.builder.unattributed


def work_dir(base: Path, paths: Sequence[Path], policy: str) -> Path:
    """One folder per (file list, policy): a re-run of the same import finds its chunks."""
    digest = hashlib.sha256(("\n".join(str(p) for p in paths) + "\n" + policy).encode())
    return base / f"ooni-{digest.hexdigest()[:16]}"


def read_measurements_dask(client: Client, paths: Sequence[Path], policy: ErrorPolicy | str,
                           work: Path, *, per_chunk: int = 64, progress: Echo = None
                           ) -> tuple[FactBuilder, OoniImport, int]:
    """Judge ``paths`` on the workers (chunks not yet done), fold in order.

    The driver merges chunk i (:meth:`Fold.chunk`) as soon as chunks 0..i are done, while
    the workers judge the rest: the serial part overlaps the parallel one instead of
    following it, and is per cell, not per record (module docstring). The order, and so the
    result and the first error under ``fail``, are those of one process.

    Returns the builder, the import summary (as ``read_measurements`` gives them) and how
    many chunks were already done (resumed). ``progress`` gets a line as chunks finish
    (:func:`~netvigil.distributed.engine.report_progress`)."""
    pol = ErrorPolicy(policy).value
    work.mkdir(parents=True, exist_ok=True)
    parts = chunks(list(paths), per_chunk)
    targets = [work / chunk_name(i, part) for i, part in enumerate(parts)]
    # workers get absolute paths (a worker on another host does not share this process's
    # working directory); what the fold records and errors name are the paths as given
    given = {str(p.absolute()): str(p) for p in paths}
    # biggest chunks first (Dask runs higher priorities first): chunks of equal file counts
    # differ in bytes, and the last chunk to start sets the run's tail (the
    # longest-processing-time rule); the driver still merges them in file order
    futures = {t: client.submit(judge_chunk, [str(p.absolute()) for p in part], pol,
                                str(t.absolute()), key=task_key(f"ooni-{t.stem}-{work.name}"),
                                pure=False, priority=sum(p.stat().st_size for p in part))
               for part, t in zip(parts, targets, strict=True) if not t.is_file()}
    report_progress(list(futures.values()), "ooni chunks", progress,
                    resumed=len(parts) - len(futures))
    fold = Fold()
    for t in targets:
        if t in futures:
            error = futures[t].result()  # a worker's exception is raised here
            if error is not None:  # in chunk order: the error one process raises first
                for f in futures.values():
                    f.cancel()  # type: ignore[no-untyped-call]
                raise InputError(given.get(error["path"], error["path"]), error["line"],
                                 error["reason"])
        doc = json.loads(t.read_text(encoding="utf-8"))
        for f in doc["files"]:
            f["path"] = given.get(f["path"], f["path"])
        fold.chunk(doc, ErrorPolicy(pol))
    return fold.builder, fold.result, len(parts) - len(futures)
