"""One path for OONI volume (issue 9, deliverable 1): the simulator's ``ooni-volume`` facts
are what ``netvigil ooni import`` writes for the same measurements.

The ``small-volume-iq`` scenario's measurement source is replayed over hours chosen here
(three days, a 16-day silence longer than the two-week zero-fill, three more days), flushed
in several parts as a replay does; the very same documents are written to a JSONL file and
imported by the CLI into a store. Every ``ooni-volume`` point of the replay must be a point
of the store with the same value, and the other way round. Nothing here restates the rule:
the store is the reference, and a simulator that zero-filled its own way (the old
per-flush rule left the whole 16-day silence missing, the importer writes its first two
weeks as 0) would differ.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path

from click.testing import CliRunner

from netvigil.cli.main import cli
from netvigil.model.facts import Fact, PointBatch
from netvigil.scenarios.simulator import load_catalogue, simulate
from netvigil.store.duck import Store

H = 3600
DAY = 86400


class ListSink:
    def __init__(self) -> None:
        self.facts: list[Fact] = []
        self.flushes = 0

    def emit(self, fact: Fact) -> None:
        self.facts.append(fact)

    def flush(self, cursors: Mapping[str, str] | None = None) -> None:
        self.flushes += 1

    def cursor(self, key: str) -> str | None:
        return None


Points = dict[tuple[str, str, int], float]


def replay_points(sink: ListSink) -> Points:
    """``ooni-volume`` points as a store would hold them (a later write of a key wins)."""
    out: Points = {}
    for f in sink.facts:
        if not isinstance(f, PointBatch):
            continue
        hit = f.signals == "ooni-volume"
        for et, code, t, v in zip(f.entity_types[hit].tolist(), f.entity_codes[hit].tolist(),
                                  f.times[hit].tolist(), f.values[hit].tolist(), strict=True):
            out[(et, code, int(t))] = float(v)
    return out


def test_simulated_volume_is_the_importers(tmp_path: Path) -> None:
    sc = load_catalogue()["small-volume-iq"]
    sc = dataclasses.replace(sc, end=sc.start + 24 * DAY)
    ooni = simulate(sc).ooni()
    assert ooni is not None
    hours = [*range(3 * 24), *range(19 * 24, 22 * 24)]  # a 16-day silence between
    sink = ListSink()
    for k, h in enumerate(hours):
        ooni.hour(sc.start + h * H)
        if k % 40 == 39:  # flushes inside each stretch, as a replay flushes
            ooni.emit(sink)
    ooni.emit(sink)
    assert ooni.measurements > 500
    mine = replay_points(sink)

    lo, hi = sc.start, sc.start + 22 * DAY
    docs = [ooni.document(i) for i in range(len(ooni.times))
            if lo <= int(ooni.times[i]) < hi
            and int(ooni.times[i]) - sc.start not in range(3 * DAY, 19 * DAY)]
    assert len(docs) == ooni.measurements
    path = tmp_path / "sim.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    store_path = tmp_path / "s.duckdb"
    res = CliRunner().invoke(cli, ["ooni", "import", str(path), "--store", str(store_path)])
    assert res.exit_code == 0, res.output
    with Store(store_path, read_only=True) as store:
        rows = store.connection.execute(
            "SELECT entity_type, entity_code, time, value FROM points "
            "WHERE signal = 'ooni-volume'").fetchall()
    theirs = {(et, code, int(t)): float(v) for et, code, t, v in rows}

    assert mine == theirs
    # the case the test exists for: the silence's first two weeks are zeros, then missing
    country = {t: v for (et, code, t), v in mine.items() if et == "country"}
    gap = range(sc.start + 3 * DAY, sc.start + 19 * DAY, H)
    zeros = [t for t in gap if country.get(t) == 0.0]
    assert len(zeros) == 14 * 24
    assert all(t not in country for t in gap if t not in zeros)
