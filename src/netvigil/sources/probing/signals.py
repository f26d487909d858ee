"""Prober rounds → :class:`~netvigil.model.facts.ProbeRound` facts, and the prober's JSONL record.

A source emits facts; it never writes the store (:mod:`netvigil.pipeline` does, through
:class:`netvigil.pipeline.probing.ProbingAggregator`, which owns the per-entity ``probing*``
series, the per-block states and the combination of vantage points). What this module keeps:

* :func:`round_fact`: one :class:`RoundResult` as a fact — *counts* per block (probes sent,
  echo replies, ICMP errors, timeouts) and the RTT samples; the prober's own belief is not a
  fact, the pipeline derives beliefs with the one model (:mod:`.belief`);
* the JSONL record, one line per block per round — the prober's own log (it carries the
  prober's live state and belief for debugging) and what ``netvigil probe collect`` replays:
  :func:`facts_from_lines` turns lines back into per-(vantage, bin) facts over the whole
  target list (a block a vantage point did not report is ``sent = 0``: unprobed).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from netvigil.model.entities import EntityRef
from netvigil.model.errors import InputError
from netvigil.model.facts import ProbeRound
from netvigil.model.times import iso_utc
from netvigil.sources.probing.belief import BlockState
from netvigil.sources.probing.prober import RoundResult
from netvigil.sources.probing.targets import TargetList

STATE_LABELS = {s.value: s.label for s in BlockState}
LABEL_STATES = {s.label: s.value for s in BlockState}


# ---------------------------------------------------------------------------- facts
def round_fact(result: RoundResult, targets: TargetList) -> ProbeRound:
    """The counts of one round as the fact every prober emits (no belief, no state)."""
    ov: tuple[tuple[EntityRef, ...] | None, ...] | None = None
    if targets.entities:
        ov = tuple(targets.entity_override(i) for i in range(len(targets)))
    return ProbeRound(
        vantage=result.vantage, round_start=float(result.round_start),
        round_seconds=max(1, int(round(result.round_seconds))),
        block_starts=np.ascontiguousarray(targets.block_starts, dtype=np.uint32),
        availability=np.asarray(targets.availability, dtype=np.float32),
        sent=result.sent, replies=result.replies, unreachable=result.unreachable,
        lost=result.lost, rtt_block=np.asarray(result.rtt_block, dtype=np.int32),
        rtt=np.asarray(result.rtt, dtype=np.float64), entity_overrides=ov)


def facts_from_lines(rows: Iterable[BlockRound], targets: TargetList,
                     step: int) -> list[ProbeRound]:
    """JSONL lines → one fact per (vantage, bin ``floor(round_start / step)``), bins in order.

    Every fact spans the whole target list; blocks without a line are not probed (sent 0).
    Lines for blocks outside ``targets`` are ignored. Each line's median RTT stands in for its
    samples (the JSONL keeps no samples).
    """
    index = {targets.block_cidr(i): i for i in range(len(targets))}
    n = len(targets)
    ov: tuple[tuple[EntityRef, ...] | None, ...] | None = None
    if targets.entities:
        ov = tuple(targets.entity_override(i) for i in range(n))
    groups: dict[tuple[int, str], list[tuple[int, BlockRound]]] = {}
    for r in rows:
        b = index.get(r.block)
        if b is not None:
            groups.setdefault((int(math.floor(r.round_start / step)), r.vantage), []).append(
                (b, r))
    out: list[ProbeRound] = []
    for (bin_, vantage), lines in sorted(groups.items()):
        sent = np.zeros(n, np.uint8)
        replies = np.zeros(n, np.uint8)
        lost = np.zeros(n, np.uint8)
        rtt_b: list[int] = []
        rtt_v: list[float] = []
        for b, r in lines:
            sent[b] = min(255, r.probes_sent)
            replies[b] = min(255, r.replies)
            lost[b] = min(255, r.lost)
            if not math.isnan(r.rtt_ms_median):
                rtt_b.append(b)
                rtt_v.append(r.rtt_ms_median / 1000.0)
        out.append(ProbeRound(
            vantage, float(bin_ * step), step,
            np.ascontiguousarray(targets.block_starts, dtype=np.uint32),
            np.asarray(targets.availability, dtype=np.float32), sent, replies,
            np.zeros(n, np.uint8), lost, np.asarray(rtt_b, np.int32),
            np.asarray(rtt_v, np.float64), ov))
    return out


# ---------------------------------------------------------------------------- JSONL
def round_lines(result: RoundResult, targets: TargetList) -> Iterator[dict[str, Any]]:
    """One JSON-able dict per block: the round's facts and the resulting state."""
    med = _block_medians(result, len(targets))
    states = result.states.tolist()
    belief = result.belief.tolist()
    sent, rep = result.sent.tolist(), result.replies.tolist()
    unr, lost = result.unreachable.tolist(), result.lost.tolist()
    start = round(result.round_start, 3)
    start_iso = iso_utc(result.round_start, millis=True)
    for i in range(len(targets)):
        yield {
            "round_start": start,
            "round_start_iso": start_iso,
            "round": result.index,
            "vantage": result.vantage,
            "block": targets.block_cidr(i),
            "state": STATE_LABELS[states[i]],
            "belief": round(belief[i], 4),
            "probes_sent": sent[i],
            "replies": rep[i],
            "unreachable": unr[i],
            "lost": lost[i],
            "rtt_ms_median": None if math.isnan(med[i]) else round(med[i], 3),
        }


def _block_medians(result: RoundResult, n: int) -> list[float]:
    out = [math.nan] * n
    if result.rtt.size:
        order = np.argsort(result.rtt_block, kind="stable")
        sb, sv = result.rtt_block[order], result.rtt[order] * 1000.0
        starts = np.searchsorted(sb, np.arange(n + 1))
        for b in np.unique(sb).tolist():
            out[b] = float(np.median(sv[starts[b]:starts[b + 1]]))
    return out


def write_round_jsonl(fh: IO[str], result: RoundResult, targets: TargetList) -> int:
    n = 0
    for line in round_lines(result, targets):
        fh.write(json.dumps(line, separators=(",", ":")) + "\n")
        n += 1
    fh.flush()
    return n


@dataclass(frozen=True)
class BlockRound:
    """One JSONL line read back (the collector's input)."""

    vantage: str
    round_start: float
    block: str
    state: int
    belief: float
    probes_sent: int
    replies: int
    lost: int  # timeouts + unreachable
    rtt_ms_median: float


def read_jsonl(paths: Iterable[str | Path]) -> Iterator[BlockRound]:
    """Parse round files; malformed lines raise :class:`InputError` with file and line."""
    for path in paths:
        p = Path(path)
        try:
            fh = p.open(encoding="utf-8")
        except OSError as exc:
            raise InputError(str(p), None, f"cannot read: {exc.strerror}") from None
        with fh:
            for no, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                try:
                    d = json.loads(raw)
                    state = LABEL_STATES[d["state"]]
                    rtt = d.get("rtt_ms_median")
                    yield BlockRound(
                        str(d.get("vantage", "")), float(d["round_start"]), str(d["block"]),
                        state, float(d["belief"]), int(d["probes_sent"]), int(d["replies"]),
                        int(d.get("lost", 0)) + int(d.get("unreachable", 0)),
                        math.nan if rtt is None else float(rtt),
                    )
                except (ValueError, KeyError, TypeError) as exc:
                    raise InputError(str(p), no, f"bad round line: {exc!r}") from None
