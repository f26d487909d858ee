"""The fuzz targets: one in-process entry per NetVigil parser, bytes in, nothing out.

Each target feeds one input to the same function the CLI calls, under the policy picked by
the input's length (even: ``skip``, odd: ``fail``), and lets only the parser's documented
error type through (the second half of each :data:`TARGETS` entry): anything else escaping
is a crash. The runner
(:mod:`fuzz.run_target` under atheris/libFuzzer) treats an uncaught exception as a crash and
an input running over its ``-timeout`` as a hang.

Why in-process entries and not the CLI per input: libFuzzer's coverage feedback and the
1M-inputs goal both need thousands of executions per second; a fresh interpreter that
imports the parsers costs ~0.4 s of CPU (``import fuzz.targets``: 0.42 s measured).

What each target covers (and what it does not) is listed in docs/fuzzing.md.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from netvigil.model.errors import ErrorPolicy, InputError, NetVigilError
from netvigil.model.facts import Fact
from netvigil.series.batch import ErrorSink
from netvigil.series.csv_format import parse_header
from netvigil.series.importers import _batch_entities, _emit_batch, import_file
from netvigil.series.ioda_format import parse_ioda
from netvigil.series.scan import scan_file
from netvigil.sources.bgp import fastrib
from netvigil.sources.bgp.mrt import MrtError, MrtReader, to_json, to_psv
from netvigil.sources.bgp.rislive import LiveIngester, RisLiveClient, RisLiveError
from netvigil.sources.ooni.facts import FactBuilder
from netvigil.sources.ooni.importer import read_measurements
from netvigil.sources.ooni.tor_userstats import parse_userstats

#: the compiled RIB scanner's chunk, shrunk so that a 2 KiB input spans several chunks
#: (records cross chunk boundaries) and an execution does not zero the production 32 MiB
FAST_CHUNK = 512


def _policy(data: bytes) -> ErrorPolicy:
    return ErrorPolicy.SKIP if len(data) % 2 == 0 else ErrorPolicy.FAIL


# ------------------------------------------------------------------ MRT, full decoder
def mrt_elems(data: bytes) -> None:
    """``netvigil bgp elems``: :class:`MrtReader` on the bytes (gzip/bzip2 by magic, as for a
    file), every element rendered in one of the command's two formats (psv or JSON, by the
    input's length: both are covered across inputs at half the rendering cost)."""
    render = to_psv if len(data) % 4 < 2 else to_json
    for e in MrtReader(data, _policy(data)):
        render(e)


# ------------------------------------------------------------------ MRT, RIB fast path
_fast_ready = False


class _SyncChunks:
    """:class:`~netvigil.sources.bgp.mrt.io.Prefetch` without its thread: the same chunks of
    ``stream.read(size)``, read on the caller's thread. Starting and joining a thread per
    input cost more than the decoding (and, on a loaded machine, most of the wall time)."""

    def __init__(self, stream: Any, size: int) -> None:
        self._stream, self._size = stream, size

    def __enter__(self) -> Iterator[bytes]:
        return iter(lambda: self._stream.read(self._size), b"")

    def __exit__(self, *exc: object) -> None:
        return None


def _fast_kernel() -> None:
    """Load the compiled scanner's pure-Python source as the "compiled" function: numba
    would not bounds-check, the Python original raises IndexError where the compiled code
    would read past the buffer, so the fuzzer sees those too. Small chunks, no thread."""
    global _fast_ready
    if not _fast_ready:
        fastrib._COMPILED[fastrib._scan_py] = fastrib._scan_py
        fastrib._CHUNK = FAST_CHUNK
        fastrib.Prefetch = _SyncChunks  # type: ignore[attr-defined,assignment]
        _fast_ready = True


def mrt_fastrib(data: bytes) -> None:
    """``bgp ingest`` / ``bgp visibility`` RIB reading: the scanner path (:func:`_read_fast`,
    handing irregular input over) and the careful numpy path (:func:`_read_careful`), both
    under the policy; under ``skip`` a fast read that finishes must give the careful read's
    columns and counts (the module's promise)."""
    _fast_kernel()
    pol = _policy(data)
    careful = fastrib._read_careful(data, pol)
    try:
        fast = fastrib._read_fast(data, pol)
    except fastrib._Irregular:
        return
    if pol is ErrorPolicy.SKIP:
        _same_columns(fast, careful)


def _rows(c: fastrib.RibColumns) -> npt.NDArray[np.uint64]:
    """The entries as sorted rows: the careful path emits a chunk's entries in lock-step
    order (entry k of every record, then entry k+1), the scanner record by record, so the
    promise is the same multiset of entries, not the same order."""
    m = np.stack([c.peer.astype(np.uint64), c.afi.astype(np.uint64), c.net,
                  c.plen.astype(np.uint64), c.origin.astype(np.uint64)], axis=1)
    return m[np.lexsort(m.T[::-1])] if len(m) else m


def _same_columns(a: fastrib.RibColumns, b: fastrib.RibColumns) -> None:
    assert np.array_equal(_rows(a), _rows(b)), "entries differ"
    assert (a.peer_ips, a.peer_asns) == (b.peer_ips, b.peer_asns), "peer tables differ"
    assert (a.stats.skipped, a.stats.truncated) == (b.stats.skipped, b.stats.truncated), (
        f"problem counts differ: {a.stats.problems} vs {b.stats.problems}")


# ------------------------------------------------------------------ series CSV
_CSV_DIR = Path(os.environ.get("NETVIGIL_FUZZ_TMP", "/dev/shm" if os.path.isdir("/dev/shm")
                               else tempfile.gettempdir()))
_CSV_PATH = _CSV_DIR / f"netvigil-fuzz-{os.getpid()}.csv"
_OONI_PATH = _CSV_DIR / f"netvigil-fuzz-{os.getpid()}.jsonl"


def series_csv(data: bytes) -> None:
    """``series import`` of a CSV, its in-process layer: the one streaming pass every byte
    goes through (:func:`scan_file`: gzip, strict UTF-8, record map), the header check
    (:func:`parse_header`) and the record/row → physical line maps every error line uses.
    DuckDB's ``read_csv`` and the SQL validation are not run (see docs/fuzzing.md)."""
    _CSV_PATH.write_bytes(data)
    try:
        scan = scan_file(_CSV_PATH)
        parse_header(scan)
    finally:
        _CSV_PATH.unlink(missing_ok=True)
    recs = np.arange(1, scan.records + 2, dtype=np.int64)
    lines = scan.line_of_record(recs)
    assert (np.diff(lines) >= 1).all(), "line numbers must grow with record numbers"
    dropped = np.asarray(scan.blank[:8], dtype=np.int64)
    scan.record_of_row(np.arange(max(scan.records - 1, 0), dtype=np.int64), dropped)


_store: Any = None


def series_csv_import(data: bytes) -> None:
    """The whole CSV import (:func:`import_file` into an in-memory store through the
    pipeline): DuckDB's ``read_csv``, the SQL validation, the registry check, the duplicate
    check and the write. ~15 ms per input, so it runs with its own, smaller goal (opt-in:
    ``python -m fuzz.runner --runs 20000 series-csv-import``). One store per process:
    ``skip`` imports accumulate rows, as repeated imports into one store do."""
    global _store
    from netvigil.pipeline import Pipeline
    from netvigil.store.duck import Store

    if _store is None:
        _store = Store(":memory:")
    _CSV_PATH.write_bytes(data)
    try:
        import_file(_store, _CSV_PATH, "csv", _policy(data).value, sink=Pipeline(_store))
    finally:
        _CSV_PATH.unlink(missing_ok=True)


# ------------------------------------------------------------------ IODA JSON
class _ListSink:
    """A FactSink collecting facts (the importer hands batches to the pipeline's sink)."""

    def __init__(self) -> None:
        self.facts: list[Fact] = []
        self.cursors: dict[str, str] = {}

    def emit(self, fact: Fact) -> None:
        self.facts.append(fact)

    def flush(self, cursors: Mapping[str, str] | None = None) -> None:
        self.cursors.update(cursors or {})

    def cursor(self, key: str) -> str | None:
        return self.cursors.get(key)


def series_ioda(data: bytes) -> None:
    """``series import`` of IODA JSON: the importer's decode (``utf-8-sig``; undecodable
    bytes are its InputError), :func:`parse_ioda` under the policy, the entity list and the
    point batches handed to the sink."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return  # importers.import_file: "cannot read file" InputError
    policy = _policy(data)
    batch = parse_ioda(text, "fuzz.json", ErrorSink("fuzz.json", policy.value))
    _batch_entities(batch)
    _emit_batch(batch, _ListSink(), "ioda:fuzz.json")


# ------------------------------------------------------------------ RIS Live
def ris_live(data: bytes) -> None:
    """``netvigil bgp live``: each line of the input is one websocket text frame through
    :meth:`RisLiveClient.handle` (with the raw-BGP cross-check on), and every element is fed
    to the :class:`LiveIngester` that bins it, then the ingester is closed."""
    client = RisLiveClient(policy=_policy(data), check_raw=True)
    ing = LiveIngester(_ListSink(), stats=client.stats)
    for frame in data.split(b"\n")[:64]:
        for le in client.handle(frame):
            ing.feed(le.collector, le.elem)
    ing.close()


# ------------------------------------------------------------------ OONI measurements
def ooni_measurements(data: bytes) -> None:
    """``netvigil ooni import`` of one file: bounded reading (gzip, JSONL or one document),
    the base keys, the verdict of each measurement and the facts built from them, handed to
    a sink. The reader takes a path, so the input goes through a file in ``/dev/shm``."""
    _OONI_PATH.write_bytes(data)
    try:
        builder = FactBuilder()
        read_measurements([_OONI_PATH], _policy(data), builder)
        builder.emit_cells(_ListSink(), {})
    finally:
        _OONI_PATH.unlink(missing_ok=True)


_TOR_PATH = _CSV_DIR / f"netvigil-fuzz-{os.getpid()}-userstats.csv"


def tor_userstats(data: bytes) -> None:
    """``netvigil tor import``: a Tor Metrics userstats CSV (plain or gzip) through
    :func:`parse_userstats` under the policy (a path, so through ``/dev/shm``)."""
    _TOR_PATH.write_bytes(data)
    try:
        parse_userstats(_TOR_PATH, _policy(data))
    finally:
        _TOR_PATH.unlink(missing_ok=True)


Target = Callable[[bytes], None]

#: name -> (entry, exceptions it may raise: the parser's documented error type)
TARGETS: dict[str, tuple[Target, tuple[type[BaseException], ...]]] = {
    "mrt-elems": (mrt_elems, (MrtError,)),
    "mrt-fastrib": (mrt_fastrib, (MrtError,)),
    "series-csv": (series_csv, (InputError,)),
    "series-ioda": (series_ioda, (InputError,)),
    "ris-live": (ris_live, (RisLiveError,)),
    "ooni": (ooni_measurements, (InputError,)),
    "tor-userstats": (tor_userstats, (InputError,)),
    "series-csv-import": (series_csv_import, (NetVigilError,)),
}


def checked(name: str) -> Target:
    """The target with its allowed errors swallowed: what libFuzzer calls per input."""
    fn, allowed = TARGETS[name]

    def one_input(data: bytes) -> None:
        try:
            fn(data)
        except allowed:
            pass

    return one_input

