"""The probe round log: every :class:`~netvigil.model.facts.ProbeRound` a pipeline folded,
kept in the store so that any writer can replay the union of every vantage point's rounds.

Why: the probing series of an entity is one series per store, the per-bin combination of
every vantage point that reported the bin (:mod:`netvigil.pipeline.probing`), and its
checkpoint keeps only the newest ``keep_bins`` bins. Two writers feed it: a local prober
(``netvigil run`` with probing, ``netvigil probe run``) and the collector's remote vantage
points (:mod:`netvigil.serve.collector`). A remote round behind its own chain, or one for a
bin older than the kept bins, can only be combined as one in-order run would combine it if
the rounds of *every* vantage point of those bins can be read again; the collector's
archive holds only the remote ones. So the pipeline logs each round it folds, in the same
transaction as the round's points and checkpoint (exactly once with them), and the
collector replays the log (docs/probe.md, "Local and remote vantage points").

Layout (``state`` table, text values; no schema change):

* ``pipeline:probing:log:<n>`` → one *chunk*: the rounds one flush folded, each as its
  vantage point, round start and length, target list id and counts (sent, replies,
  unreachable, lost, RTT samples: raw arrays, zlib, base64). One row per flush, not per
  round: the state table's upsert costs milliseconds a row, and a demo folds thousands of
  rounds in one flush (measured under ``cProfile`` at load ~12: a row per round, 2,619
  upserts, took 20 s of the demo's 106 s; a row per flush, 9 upserts, 0.6 s). Chunks are
  read in order and a round folded again (a replay, ``probe collect``
  of the same file, a re-sent round) replaces its earlier copy: keyed by vantage point and
  round start, the log never yields a round twice.
* ``pipeline:probing:targets:<sha256>`` → block starts, availability and entity overrides of
  a target list, stored once (rounds of one prober share it: a round costs its counts only).
* ``pipeline:probing:round-summary`` → the number of chunks, per vantage point its last
  round start and the newest distinct bins: what :func:`folds_in_order` needs without
  reading the log.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import zlib
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from netvigil.model.entities import EntityRef, EntityType
from netvigil.model.facts import ProbeRound

CHUNK_PREFIX = "pipeline:probing:log:"
TARGETS_PREFIX = "pipeline:probing:targets:"
SUMMARY_KEY = "pipeline:probing:round-summary"
#: distinct bins the summary keeps (more than any ``ProbingOptions.keep_bins`` in use)
SUMMARY_BINS = 64

GetState = Callable[[str], str | None]


def _npz(**arrays: Any) -> str:
    buf = io.BytesIO()
    np.savez_compressed(buf, allow_pickle=False, **arrays)
    return base64.b64encode(buf.getvalue()).decode("ascii")


class _TargetIds:
    """Target list → id, computed once per list object (rounds of one prober share the
    very same arrays), and the value stored only for an id the store does not have."""

    def __init__(self, get_state: GetState) -> None:
        self.get_state = get_state
        self.ids: dict[tuple[int, int, int], str] = {}
        self.known: set[str] = set()

    def id_of(self, f: ProbeRound, out: dict[str, str]) -> str:
        key = (id(f.block_starts), id(f.availability), id(f.entity_overrides))
        tid = self.ids.get(key)
        if tid is None:
            ov = None if f.entity_overrides is None else [
                None if refs is None else [[r.type.value, r.code] for r in refs]
                for refs in f.entity_overrides]
            meta = json.dumps({"overrides": ov}).encode()
            blocks = np.ascontiguousarray(f.block_starts, dtype=np.uint32)
            avail = np.ascontiguousarray(f.availability, dtype=np.float32)
            tid = hashlib.sha256(blocks.tobytes() + avail.tobytes() + meta).hexdigest()
            self.ids[key] = tid
            tkey = f"{TARGETS_PREFIX}{tid}"
            if tid not in self.known and self.get_state(tkey) is None:
                out[tkey] = _npz(blocks=blocks, availability=avail,
                                 meta=np.frombuffer(meta, dtype=np.uint8))
            self.known.add(tid)
        return tid


def _counts(f: ProbeRound) -> str:
    """The round's counts as one compressed byte string (four uint8 columns, then the RTT
    samples' block indices and seconds)."""
    raw = b"".join((np.ascontiguousarray(a, dtype=t).tobytes() for a, t in (
        (f.sent, np.uint8), (f.replies, np.uint8), (f.unreachable, np.uint8),
        (f.lost, np.uint8), (f.rtt_block, np.int32), (f.rtt, np.float64))))
    return base64.b64encode(zlib.compress(raw, 1)).decode("ascii")


def log_entries(facts: Iterable[ProbeRound], get_state: GetState) -> dict[str, str]:
    """The state rows that log ``facts``: one chunk of their rounds, target lists not stored
    yet and the updated summary. Written by the caller in the transaction of the rounds'
    points."""
    out: dict[str, str] = {}
    summary = _summary(get_state)
    ids = _TargetIds(get_state)
    rounds = []
    for f in facts:
        rounds.append({"vantage": f.vantage, "round_start": float(f.round_start),
                       "round_seconds": int(f.round_seconds), "targets": ids.id_of(f, out),
                       "n": int(f.sent.size), "n_rtt": int(np.asarray(f.rtt).size),
                       "counts": _counts(f)})
        _note(summary, f)
    if not rounds:
        return out
    n = int(summary.get("chunks", 0))
    out[f"{CHUNK_PREFIX}{n}"] = json.dumps({"rounds": rounds})
    summary["chunks"] = n + 1
    out[SUMMARY_KEY] = json.dumps(summary)
    return out


def _summary(get_state: GetState) -> dict[str, Any]:
    text = get_state(SUMMARY_KEY)
    return json.loads(text) if text else {"last": {}, "bins": []}


def _bin(round_start: float, step: int) -> int:
    """The bin of a round, as the aggregator places it (``ProbingAggregator.points``)."""
    return int(math.floor(round_start / step) * step)


def _note(summary: dict[str, Any], f: ProbeRound) -> None:
    last = summary["last"]
    last[f.vantage] = max(float(last.get(f.vantage, -math.inf)), float(f.round_start))
    b = _bin(f.round_start, int(f.round_seconds))
    bins = summary["bins"]
    if b not in bins and (len(bins) < SUMMARY_BINS or b > bins[0]):
        summary["bins"] = sorted([*bins, b])[-SUMMARY_BINS:]


def folds_in_order(get_state: GetState, vantage: str, round_start: float, step: int,
                   keep_bins: int) -> bool:
    """Would folding this round into the store's checkpoint give what one in-order run over
    every logged round gives? Yes when it continues its vantage point's chain (later than
    that vantage point's last logged round) and its bin is still kept by the checkpoint (at
    or after the oldest of the ``keep_bins`` newest bins: the aggregator keeps every report
    of those, ``ProbingAggregator.points``). Otherwise the caller replays :func:`read_log`."""
    s = _summary(get_state)
    last = s["last"].get(vantage)
    if last is not None and round_start <= float(last):
        return False
    kept = s["bins"][-keep_bins:]
    return not kept or _bin(round_start, step) >= kept[0]


def read_log(get_state: GetState) -> list[ProbeRound]:
    """Every logged round, the latest copy of each, sorted by (round start, vantage point):
    the one replay order."""
    targets: dict[str, tuple[Any, Any, Any]] = {}
    latest: dict[tuple[str, float], dict[str, Any]] = {}
    for i in range(int(_summary(get_state).get("chunks", 0))):
        text = get_state(f"{CHUNK_PREFIX}{i}")
        if text is None:  # written in the transaction of the summary that counts it
            raise ValueError(f"round log: chunk {i} missing")
        for d in json.loads(text)["rounds"]:
            latest[(str(d["vantage"]), float(d["round_start"]))] = d
    out = [_decode(d, targets, get_state) for d in latest.values()]
    return sorted(out, key=lambda f: (f.round_start, f.vantage))


def _decode(d: dict[str, Any], targets: dict[str, tuple[Any, Any, Any]],
            get_state: GetState) -> ProbeRound:
    tid = str(d["targets"])
    if tid not in targets:
        text = get_state(f"{TARGETS_PREFIX}{tid}")
        if text is None:
            raise ValueError(f"round log: target list {tid[:12]} missing")
        with np.load(io.BytesIO(base64.b64decode(text)), allow_pickle=False) as z:
            meta = json.loads(z["meta"].tobytes())
            ov = meta["overrides"]
            targets[tid] = (z["blocks"].astype(np.uint32), z["availability"].astype(np.float32),
                            None if ov is None else tuple(
                                None if refs is None else tuple(
                                    EntityRef(EntityType(t), c) for t, c in refs)
                                for refs in ov))
    blocks, avail, overrides = targets[tid]
    n, m = int(d["n"]), int(d["n_rtt"])
    raw = zlib.decompress(base64.b64decode(d["counts"]))
    u8 = np.frombuffer(raw, np.uint8, 4 * n).reshape(4, n).copy()
    rtt_block = np.frombuffer(raw, np.int32, m, 4 * n).copy()
    rtt = np.frombuffer(raw, np.float64, m, 4 * n + 4 * m).copy()
    return ProbeRound(str(d["vantage"]), float(d["round_start"]), int(d["round_seconds"]),
                      blocks, avail, u8[0], u8[1], u8[2], u8[3], rtt_block, rtt, overrides)
