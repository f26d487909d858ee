"""What makes ``netvigil ooni import`` fast changes nothing it writes.

* Worker processes (``read_measurements(jobs=N)``, the CLI's ``--jobs``): files judged in
  forked workers and folded in file order give the single-process builder field by field,
  the same counts, duplicates across files and malformed records, and under ``fail`` the
  same first malformed record.
* The ledger's fast path (``accept(cells=builder)``): when every row is new and the touched
  hours hold no other stored row, the importer's own cells are emitted instead of reading
  the rows back; the points are those of the read-back derivation, and a batch whose hours
  hold earlier rows is derived from the store.

Real shared OONI fixtures, a real DuckDB store; no timing here (benchmarks/bench_ooni_import.py).
"""

from __future__ import annotations

import gzip
import json
import multiprocessing
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from netvigil.model import InputError
from netvigil.pipeline import Pipeline
from netvigil.sources.ooni import importer
from netvigil.sources.ooni.facts import SOURCE, FactBuilder
from netvigil.sources.ooni.importer import PARALLEL_MIN_FILES, read_measurements
from netvigil.sources.ooni.ledger import accept
from netvigil.sources.ooni.reader import expand
from netvigil.store import Store
from netvigil.store.ooni_ledger import OoniLedger

FIX = Path(__file__).parent / "fixtures" / "ooni"


def _plain(b: FactBuilder) -> dict[str, object]:
    """Every field of a builder as plain lists, in its dicts' order."""
    def plain(x: object) -> object:
        if isinstance(x, dict):
            return [(k, plain(v)) for k, v in x.items()]
        return x

    return {f.name: plain(getattr(b, f.name)) for f in fields(FactBuilder)}


def _inputs(tmp: Path) -> list[Path]:
    """The shared fixtures (report1.json.pretty repeats report1.json: a duplicate across
    files) plus a file with a bad line between good ones and a truncated gzip."""
    doc = json.loads((FIX / "signal_022.json").read_text())
    mixed = tmp / "zz_mixed.jsonl"
    copies = [dict(doc, report_id=f"speed-{i}") for i in range(3)]
    mixed.write_text(json.dumps(copies[0]) + "\n{not json\n" +
                     "".join(json.dumps(d) + "\n" for d in copies[1:]))
    trunc = tmp / "zz_trunc.jsonl.gz"
    trunc.write_bytes(gzip.compress((json.dumps(dict(doc, report_id="speed-t")) + "\n")
                                    .encode() * 50)[:-40])
    return [*expand([FIX]), mixed, trunc]


def test_workers_judge_and_fold_like_one_process(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    paths = _inputs(tmp_path)
    assert len(paths) >= PARALLEL_MIN_FILES
    monkeypatch.setattr(importer, "PARALLEL_MIN_BYTES", 0)  # the fixtures are ~300 KB
    pools: list[str | None] = []
    real = multiprocessing.get_context

    def spy(method: str | None = None) -> Any:
        pools.append(method)
        return real(method)

    monkeypatch.setattr(multiprocessing, "get_context", spy)
    one, two = FactBuilder(), FactBuilder()
    r1 = read_measurements(paths, "skip", one, jobs=1)
    assert pools == []
    r2 = read_measurements(paths, "skip", two, jobs=2)
    assert pools == ["fork"]  # the workers ran
    # the cases the fold decides are in the input
    assert r1.duplicates >= 1 and r1.malformed.total >= 2 and r1.unattributed >= 1
    assert r2.text() == r1.text() and r2.files == r1.files
    assert r2.malformed == r1.malformed and r2.by_test == r1.by_test
    assert _plain(two) == _plain(one) and len(one.rows) > 20
    with pytest.raises(InputError) as e1:
        read_measurements(paths, "fail", FactBuilder(), jobs=1)
    with pytest.raises(InputError) as e2:
        read_measurements(paths, "fail", FactBuilder(), jobs=2)
    assert str(e2.value) == str(e1.value) and "zz_mixed.jsonl:2" in str(e1.value)


class NoReadBack(OoniLedger):
    """The store's ledger, counting read-backs of the touched hours' rows."""

    reads = 0

    def rows_in_hours(self, hours: npt.NDArray[np.int64]) -> dict[str, npt.NDArray[Any]]:
        type(self).reads += 1
        return super().rows_in_hours(hours)


def _accept(store_path: Path, paths: list[Path], *, cells: bool) -> int:
    """One import's accept into the store; returns the ledger read-backs it made."""
    b = FactBuilder()
    read_measurements(paths, "skip", b)
    NoReadBack.reads = 0
    with Store(store_path) as store:
        pipeline = Pipeline(store)
        with store.transaction():
            accept(NoReadBack(store), b.ledger_rows(), pipeline, SOURCE,
                   cells=b if cells else None)
            pipeline.flush()
    return NoReadBack.reads


def _points(store_path: Path) -> list[tuple[Any, ...]]:
    with Store(store_path, read_only=True) as s:
        return s.connection.execute(
            "SELECT entity_type, entity_code, signal, time, value FROM points ORDER BY ALL"
        ).fetchall()


def test_new_hours_emit_the_importers_cells_with_the_derived_points(tmp_path: Path) -> None:
    paths = expand([FIX])
    fast, derived = tmp_path / "fast.duckdb", tmp_path / "derived.duckdb"
    assert _accept(fast, paths, cells=True) == 0  # nothing read back
    assert _accept(derived, paths, cells=False) == 1
    got = _points(fast)
    assert got == _points(derived) and len(got) > 50
    # a new measurement in an hour that already holds stored ones: derived from the store
    doc = json.loads((FIX / "signal_022.json").read_text())
    late = tmp_path / "late.json"
    late.write_text(json.dumps(dict(doc, report_id="late-upload")))
    assert _accept(fast, [late], cells=True) == 1
    assert _accept(derived, [late], cells=False) == 1
    assert _points(fast) == _points(derived) != got
