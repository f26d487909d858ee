"""A probing fleet: rounds of many vantage points merged per round through partitions.

Each vantage point (a prober anywhere) writes its :class:`~netvigil.model.facts.ProbeRound`
facts as **round partitions** in the dataset layout of :mod:`.dataset`::

    ROOT/source=probe-rounds/date=YYYY-MM-DD/hour=HH/part-<vantage>.parquet

one row per (round, /24 block): ``round_start, round_seconds, block, availability, sent,
replies, unreachable, lost``. A part holds all of the vantage point's rounds that start in
that hour; uploading again replaces it (atomic: temporary file, fsync, rename), so a part is
never half-read and a retried upload is harmless.

:func:`merge_rounds` is the one merger (the store's writer): it reads every part, keeps the
rounds newer than what it already merged **per vantage point** (cursor
``fleet:merged`` = ``{vantage: last round_start}``, flushed in the transaction of the points
it produced, so a crash never merges a round twice: a round's counts fold into the belief
once) and emits them in (round start, vantage) order into the one pipeline. Per round bin the
:class:`~netvigil.pipeline.probing.ProbingAggregator` combines every vantage point that
reported (up if anyone saw it up), so:

* a **missing** vantage point is simply not in the combination (no value is invented);
* a **late** one (its parts arrive after the merger ran) joins the bins it reports: the
  aggregator keeps the last ``keep_bins`` bins (6) and re-emits a bin a late report joins,
  and the store upserts — within that window the stored values equal those of an in-order
  run (tested); older reports still chain the vantage point's beliefs but no longer change
  a stored bin. The window is the same across a **restart** of the merger: the pipeline's
  probing checkpoint keeps every kept bin's reports (a bin every known vantage point has
  passed as one combined report), so a vantage point never seen before that reports such a
  bin after the restart is combined with every earlier report (tested; before this the
  closed bins were kept empty and the late report was judged alone: a loss share of 15.0
  instead of 17.5 % for Egypt in the bin where the late vantage point joined).

Why not a broker: the merger needs rounds in order per vantage point and all reports of a
bin together, which partitions give (a directory listing and a cursor); a broker would add
a server without changing that ordering rule. Not carried: RTT samples (no latency series
through this path) and ``entity_overrides`` (a test bed's own entities).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np

from netvigil.distributed.dataset import _atomic_copy, check_unit, partition_dir
from netvigil.model.errors import InputError
from netvigil.model.facts import FactSink, ProbeRound

SOURCE = "probe-rounds"
CURSOR = "fleet:merged"
_COLUMNS = ("round_start", "round_seconds", "block", "availability", "sent", "replies",
            "unreachable", "lost")


def write_rounds(root: str | Path, vantage: str, rounds: Sequence[ProbeRound]) -> list[Path]:
    """Write one vantage point's rounds, one part per hour of their start (replacing it)."""
    check_unit(vantage)
    by_hour: dict[int, list[ProbeRound]] = {}
    for r in rounds:
        if r.vantage != vantage:
            raise ValueError(f"round of {r.vantage!r} in {vantage!r}'s upload")
        if r.entity_overrides is not None or r.rtt.size:
            raise ValueError("fleet partitions carry no RTT samples or entity overrides")
        hour = int(r.round_start) // 3600 * 3600
        by_hour.setdefault(hour, []).append(r)
    out = []
    con = duckdb.connect()
    try:
        for hour, rs in sorted(by_hour.items()):
            n = [len(r) for r in rs]
            cols = {
                "round_start": np.repeat([float(r.round_start) for r in rs], n),
                "round_seconds": np.repeat([int(r.round_seconds) for r in rs], n),
                "block": np.concatenate([r.block_starts for r in rs]).astype(np.int64),
                "availability": np.concatenate([r.availability for r in rs]).astype(np.float32),
                **{c: np.concatenate([getattr(r, c) for r in rs]).astype(np.int16)
                   for c in ("sent", "replies", "unreachable", "lost")},
            }
            con.register("_r", cols)
            target = partition_dir(Path(root), SOURCE, hour) / f"part-{vantage}.parquet"
            _atomic_copy(con, f"SELECT {', '.join(_COLUMNS)} FROM _r ORDER BY round_start,"
                              " block", target, [])
            con.unregister("_r")
            out.append(target)
    finally:
        con.close()
    return out


@dataclass(frozen=True)
class FleetMerge:
    rounds: int  # rounds emitted now
    vantages: tuple[str, ...]  # vantage points that had new rounds
    #: rounds read at or before the vantage point's merged cursor (not emitted again); parts
    #: whose whole hour is before the cursor are not read and not counted
    stale: int


def _hour(path: Path) -> int:
    """Start (unix s) of a part's hour, from its ``date=``/``hour=`` directories."""
    day = datetime.strptime(path.parent.parent.name.removeprefix("date="), "%Y-%m-%d")
    return int(day.replace(tzinfo=UTC).timestamp()) + 3600 * int(
        path.parent.name.removeprefix("hour="))


def _rounds(root: Path, merged: dict[str, float] | None = None) -> list[ProbeRound]:
    """Every round in the parts, in (round start, vantage) order. A part whose whole hour
    is at or before its vantage point's ``merged`` cursor is not read: a pass reads the new
    hours, not the fleet's history (every round in it would be stale)."""
    done = merged or {}
    parts = sorted(root.glob(f"source={SOURCE}/date=*/hour=*/part-*.parquet"))
    out: list[ProbeRound] = []
    con = duckdb.connect()
    try:
        for path in parts:
            vantage = path.stem.removeprefix("part-")
            if _hour(path) + 3600 <= done.get(vantage, float("-inf")):
                continue
            try:
                rows = con.execute(f"SELECT {', '.join(_COLUMNS)} FROM read_parquet(?)"
                                   " ORDER BY round_start, block", [str(path)]).fetchnumpy()
            except duckdb.Error as exc:  # a damaged or foreign part: say which, merge nothing
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise InputError(str(path), None, f"not a round partition: {first}") from exc
            starts = rows["round_start"]
            cut = np.flatnonzero(np.diff(starts)) + 1
            for idx in np.split(np.arange(starts.size), cut):
                if idx.size == 0:
                    continue
                i0 = int(idx[0])
                out.append(ProbeRound(
                    vantage, float(starts[i0]), int(rows["round_seconds"][i0]),
                    rows["block"][idx].astype(np.uint32),
                    rows["availability"][idx].astype(np.float32),
                    *(rows[c][idx].astype(np.uint8)
                      for c in ("sent", "replies", "unreachable", "lost"))))
    finally:
        con.close()
    out.sort(key=lambda r: (r.round_start, r.vantage))
    return out


def merge_rounds(sink: FactSink, root: str | Path) -> FleetMerge:
    """Emit every round not merged yet into ``sink`` (the pipeline), then flush with the
    advanced cursor (module docstring)."""
    merged: dict[str, float] = json.loads(sink.cursor(CURSOR) or "{}")
    emitted = stale = 0
    seen: set[str] = set()
    for r in _rounds(Path(root), dict(merged)):
        if r.round_start <= merged.get(r.vantage, float("-inf")):
            stale += 1
            continue
        sink.emit(r)
        merged[r.vantage] = r.round_start
        seen.add(r.vantage)
        emitted += 1
    sink.flush({CURSOR: json.dumps(merged, sort_keys=True)})
    return FleetMerge(emitted, tuple(sorted(seen)), stale)
