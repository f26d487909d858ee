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
  reading the log; after a prune also the base's day (``base_before``) and the day the
  last prune cut at (``pruned_before``), so neither a late round's check nor the
  observatory's call per bin reads the base.
* ``pipeline:probing:log-base`` → after :func:`prune_log`, the day ``before`` which rounds
  left the log and the probing checkpoint (:meth:`ProbingAggregator.state`) of one in-order
  fold of exactly those rounds. A replay restores it and folds the remaining log on top.

Pruning (:func:`prune_log`): without it the log grows by every round forever and a replay's
cost with the store's probing history (decision 51, "Costs"). Rounds whose start is before
a day boundary ``C`` are folded, in the replay's order, into the base (starting from the
previous base), and leave the log, in one transaction. Why that is exact: a replay sorts
rounds by (round start, vantage point), so every pruned round comes before every kept one;
folding is deterministic, and a checkpoint continued is the run it was cut from (the
pipeline's restart guarantee, ``pipeline/probing.py`` "Checkpoint"); ``C`` is a multiple of
every logged round length, so no bin holds rounds from both sides and a replay rewrites only
bins from its late round's on, all at or after ``C``. What it costs: a round *older* than
``C`` can no longer be combined in order (the rounds it would combine with are gone), so
the collector archives it but does not fold it and says so (:class:`RoundTooOld`); the
observatory keeps :data:`KEEP_SECONDS` (7 days) of log by default, far beyond a probe's
spool of a few hours offline.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from netvigil.model.entities import EntityRef, EntityType
from netvigil.model.facts import ProbeRound

if TYPE_CHECKING:
    from netvigil.pipeline.probing import ProbingOptions
    from netvigil.store.duck import Store

CHUNK_PREFIX = "pipeline:probing:log:"
TARGETS_PREFIX = "pipeline:probing:targets:"
SUMMARY_KEY = "pipeline:probing:round-summary"
BASE_KEY = "pipeline:probing:log-base"
#: how much of the log the observatory keeps behind its newest round (``prune_log``)
KEEP_SECONDS = 7 * 86_400
_DAY = 86_400
_NEVER = -(2**62)
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
    the one replay order. After :func:`prune_log`, the rounds before the base's day are not
    here: a replay starts from :func:`read_base` instead of the initial belief."""
    targets: dict[str, tuple[Any, Any, Any]] = {}
    return [_decode(d, targets, get_state) for d in _latest(get_state)]


def _latest(get_state: GetState) -> list[dict[str, Any]]:
    """The logged rounds as stored (encoded), the latest copy of each, in replay order."""
    latest: dict[tuple[str, float], dict[str, Any]] = {}
    for i in range(int(_summary(get_state).get("chunks", 0))):
        text = get_state(f"{CHUNK_PREFIX}{i}")
        if text is None:  # written in the transaction of the summary that counts it
            raise ValueError(f"round log: chunk {i} missing")
        for d in json.loads(text)["rounds"]:
            latest[(str(d["vantage"]), float(d["round_start"]))] = d
    return [latest[k] for k in sorted(latest, key=lambda k: (k[1], k[0]))]


class RoundTooOld(ValueError):
    """A round older than the round log's base (:func:`prune_log`): the rounds it would be
    combined with were folded into the base, so it cannot be combined in order."""


@dataclass(frozen=True)
class Base:
    """Where the pruned log starts: rounds before ``before`` are folded into ``state``."""

    before: int  # unix seconds, a day boundary
    state: bytes  # a probing checkpoint (ProbingAggregator.state)
    rounds: int  # rounds folded into it, over every prune


def read_base(get_state: GetState) -> Base | None:
    text = get_state(BASE_KEY)
    if text is None:
        return None
    d = json.loads(text)
    return Base(int(d["before"]), base64.b64decode(d["state"]), int(d["rounds"]))


def check_not_pruned(get_state: GetState, rounds: Iterable[ProbeRound]) -> None:
    """Raise :class:`RoundTooOld` for the first round before the base's day, if any (from
    the summary: the base itself is a checkpoint of every block's beliefs, not read here)."""
    before = _summary(get_state).get("base_before")
    if before is None:
        return
    for f in rounds:
        if f.round_start < before:
            raise RoundTooOld(
                f"round of {f.vantage} at {f.round_start:.0f} is older than the round log's "
                f"base ({before}: rounds before it were pruned into a checkpoint), so it "
                "cannot be combined in order; it is archived, not folded")


@dataclass(frozen=True)
class Pruned:
    """What :func:`prune_log` did."""

    before: int | None  # the base's day after the call (None: the log has no base)
    folded: int  # rounds moved from the log into the base by this call
    kept: int  # rounds left in the log (-1: not read, nothing newly prunable this day)
    bytes_before: int  # the log's text (chunks and target lists) before and after
    bytes_after: int
    stale: int = 0  # rounds older than the previous base, dropped unfolded (logged since)


def prune_log(store: Store, keep_seconds: int = KEEP_SECONDS,
              options: ProbingOptions | None = None) -> Pruned:
    """Fold the rounds that start before ``C`` into the log's base and drop them from the
    log, in one transaction (module docstring, "Pruning"). ``C`` is the day boundary at or
    before the newest logged bin minus ``keep_seconds``; a second call with nothing older
    changes nothing. ``options`` must be those of the pipelines replaying the log (the
    belief model is part of a checkpoint): the default, as the collector's and the
    observatory's."""
    from netvigil.pipeline.probing import ProbingAggregator, ProbingOptions

    get = store.get_state
    with store.transaction():
        summary = _summary(get)
        was = summary.get("base_before")
        if not summary["bins"]:
            return Pruned(was, 0, 0, 0, 0)
        cut = (int(summary["bins"][-1]) - keep_seconds) // _DAY * _DAY
        if cut <= int(summary.get("pruned_before", _NEVER)):
            return Pruned(was, 0, -1, -1, -1)  # read nothing (the observatory, every bin)
        base = read_base(get)
        size = _log_bytes(store)
        rounds = _latest(get)
        steps = {int(d["round_seconds"]) for d in rounds}
        odd = sorted(s for s in steps if _DAY % s)
        if odd:
            raise ValueError(f"round log: rounds of {odd[0]} s do not divide a day; "
                             "the log cannot be cut at a day without splitting a bin")
        # a round a local pipeline logged after an earlier prune, older than its base:
        # it cannot be placed in order any more (as the collector refuses such rounds)
        floor = base.before if base is not None else _NEVER
        stale = sum(float(d["round_start"]) < floor for d in rounds)
        old = [d for d in rounds if floor <= float(d["round_start"]) < cut]
        summary["pruned_before"] = cut  # the next call this day reads nothing
        if not old and not stale:
            store.set_state(SUMMARY_KEY, json.dumps(summary))
            return Pruned(base.before if base else None, 0, len(rounds), size, size)
        opts = options or ProbingOptions()
        agg = ProbingAggregator(None, _silent(opts))  # type: ignore[arg-type]  # never emits
        if base is not None:
            agg.restore(base.state, from_base=True)
        targets: dict[str, tuple[Any, Any, Any]] = {}
        for d in old:
            agg.points(_decode(d, targets, get))
        kept = [d for d in rounds if float(d["round_start"]) >= cut]
        for i in range(int(summary.get("chunks", 0))):
            store.delete_state(f"{CHUNK_PREFIX}{i}")
        if kept:
            store.set_state(f"{CHUNK_PREFIX}0", json.dumps({"rounds": kept}))
        summary["chunks"] = 1 if kept else 0
        summary["base_before"] = cut
        store.set_state(SUMMARY_KEY, json.dumps(summary))
        used = {str(d["targets"]) for d in kept}
        for key in store.state_keys(TARGETS_PREFIX):
            if key[len(TARGETS_PREFIX):] not in used:
                store.delete_state(key)
        folded = (base.rounds if base else 0) + len(old)
        store.set_state(BASE_KEY, json.dumps({
            "before": cut, "rounds": folded,
            "state": base64.b64encode(agg.state()).decode("ascii")}))
        return Pruned(cut, len(old), len(kept), size, _log_bytes(store), stale)


def _silent(opts: ProbingOptions) -> ProbingOptions:
    """The options of a fold that only moves beliefs and kept bins (no points, no log)."""
    from dataclasses import replace

    return replace(opts, log_rounds=False, emit_only=frozenset(), start_over=False)


def _log_bytes(store: Store) -> int:
    return store.state_size(CHUNK_PREFIX) + store.state_size(TARGETS_PREFIX)


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
