"""Rounds → facts on disk and per-entity series: ``probing``, ``probing-loss``, ``-latency``.

Per round and entity (country, AS, or the override of the targets file):

* ``probing``: number of /24 blocks in state *up* (IODA ``ping-slash24``). NaN — missing,
  not zero — when none of the entity's blocks produced an outcome that round, or when fewer
  than ``min_coverage`` of them did (a prober that fell behind or went silent must show as a
  gap, never as an outage);
* ``probing-loss``: percentage of resolved probes without an echo reply (timeouts and ICMP
  errors), over all probes to the entity's blocks;
* ``probing-latency``: median RTT in ms of the echo replies; ``probing-latency-p90`` the 90th
  percentile.

Block states are persisted twice: one JSONL line per block per round (the fact record, with
counts and belief) and, in the store, a ``probing-state`` series per block entity
(1 up, 0 down, −1 uncertain, NULL unprobed) plus the block's own ``probing`` series (1 up,
0 down, NULL otherwise). Series bins are ``floor(round_start / step)``
with ``step`` the round length, so rounds need not start on a bin boundary.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from netvigil.model.entities import EntityRef, EntityType, make_ref
from netvigil.model.errors import InputError, InvalidEntity
from netvigil.sources.probing.belief import BlockState
from netvigil.sources.probing.prober import RoundResult
from netvigil.sources.probing.targets import TargetList

I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

SIGNAL_UP = "probing"
SIGNAL_LOSS = "probing-loss"
SIGNAL_LATENCY = "probing-latency"
SIGNAL_LATENCY_P90 = "probing-latency-p90"
SIGNAL_BLOCK_STATE = "probing-state"
SOURCE = "probing"

STATE_LABELS = {s.value: s.label for s in BlockState}
LABEL_STATES = {s.label: s.value for s in BlockState}


# ---------------------------------------------------------------------------- entities
@dataclass(frozen=True, eq=False)
class EntityMap:
    """Entities and their member blocks, in CSR form (``members[offsets[e]:offsets[e+1]]``)."""

    refs: tuple[EntityRef, ...]
    offsets: I64
    members: I64
    source: str

    def __len__(self) -> int:
        return len(self.refs)

    def block_entities(self, n_blocks: int) -> list[list[EntityRef]]:
        out: list[list[EntityRef]] = [[] for _ in range(n_blocks)]
        for e, ref in enumerate(self.refs):
            for b in self.members[self.offsets[e]:self.offsets[e + 1]].tolist():
                out[b].append(ref)
        return out

    def sum(self, per_block: npt.ArrayLike) -> F64:
        """Sum a per-block quantity over each entity's blocks."""
        v = np.asarray(per_block, dtype=np.float64)[self.members]
        csum = np.concatenate([[0.0], np.cumsum(v)])
        return np.asarray(csum[self.offsets[1:]] - csum[self.offsets[:-1]], dtype=np.float64)

    @property
    def sizes(self) -> I64:
        return np.diff(self.offsets)


def build_entity_map(targets: TargetList, when: int | None = None, *,
                     geo: Any | None = None) -> EntityMap:
    """Country, region and AS of every block via the spine's as-of-date lookup, or overrides.

    A block with an ``entity`` override counts only in the entities it names; every other
    block counts in its country and its AS as of ``when`` (unix seconds; None = now), and
    in its region when the lookup has a region database (mmdb) configured.
    ``geo`` is a ``GeoLookup`` (default: ``GeoLookup.default()``), only loaded if needed.
    """
    n = len(targets)
    pairs_e: list[int] = []
    pairs_b: list[int] = []
    index: dict[EntityRef, int] = {}
    refs: list[EntityRef] = []

    def ent(ref: EntityRef) -> int:
        if ref not in index:
            index[ref] = len(refs)
            refs.append(ref)
        return index[ref]

    plain = [i for i in range(n) if targets.entity_override(i) is None]
    source = "override"
    if plain:
        if geo is None:
            from netvigil.geo.lookup import GeoLookup

            geo = GeoLookup.default()
        loc = geo.bulk_blocks(targets.block_starts[plain], when)
        source = str(loc.country_source or "geo")
        cidx = loc.country_idx.tolist()
        asn = loc.asn.tolist()
        regions = _regions(geo, [targets.block_cidr(b) for b in plain], when)
        for j, b in enumerate(plain):
            reg = regions[j]
            if reg is not None:
                pairs_e.append(ent(reg))
                pairs_b.append(b)
            if cidx[j] >= 0:
                pairs_e.append(ent(EntityRef(EntityType.COUNTRY, loc.countries[cidx[j]])))
                pairs_b.append(b)
            if asn[j] > 0:
                pairs_e.append(ent(EntityRef(EntityType.ASN, str(asn[j]))))
                pairs_b.append(b)
    for b in range(n):
        for ref in targets.entity_override(b) or ():
            pairs_e.append(ent(ref))
            pairs_b.append(b)
    e = np.asarray(pairs_e, dtype=np.int64)
    blocks = np.asarray(pairs_b, dtype=np.int64)
    order = np.lexsort((blocks, e))
    counts = np.bincount(e, minlength=len(refs)) if e.size else np.zeros(len(refs), np.int64)
    offsets = np.zeros(len(refs) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return EntityMap(tuple(refs), offsets, blocks[order], source)


def _regions(geo: Any, cidrs: Sequence[str], when: int | None,
             probe_first: int = 64) -> list[EntityRef | None]:
    """Region of each block from the geo lookup's mmdb, one address at a time.

    The bulk API has no region column, so this is a per-block loop (~µs each). Without an
    mmdb configured no block has a region; the first ``probe_first`` answers decide whether
    to ask for the rest.
    """
    out: list[EntityRef | None] = []
    for i, cidr in enumerate(cidrs):
        if i == probe_first and not any(r is not None for r in out):
            return out + [None] * (len(cidrs) - i)
        code = geo.region(cidr, when) if hasattr(geo, "region") else None
        try:
            out.append(make_ref(EntityType.REGION, code) if code else None)
        except InvalidEntity:
            out.append(None)
    return out


# ---------------------------------------------------------------------------- signals
@dataclass(frozen=True, eq=False)
class EntityRound:
    """Per-entity values of one round (arrays aligned with ``EntityMap.refs``)."""

    time: float  # round start, unix seconds
    up: F64
    loss: F64  # percent
    latency_ms: F64  # median
    latency_p90_ms: F64
    coverage: F64  # share of the entity's blocks with an outcome this round


def entity_round(states: I8, lost: npt.ArrayLike, resolved: npt.ArrayLike,
                 rtt_block: npt.ArrayLike, rtt: npt.ArrayLike, emap: EntityMap, time: float,
                 *, min_coverage: float = 1.0) -> EntityRound:
    """Aggregate one round of block states and probe counts into per-entity values."""
    st = np.asarray(states)
    observed = emap.sum(st != BlockState.UNPROBED)
    sizes = emap.sizes.astype(np.float64)
    coverage = np.divide(observed, sizes, out=np.zeros_like(observed), where=sizes > 0)
    up = emap.sum(st == BlockState.UP)
    up = np.where((observed > 0) & (coverage >= min_coverage - 1e-12), up, np.nan)
    n_lost, n_done = emap.sum(lost), emap.sum(resolved)
    loss = np.divide(100.0 * n_lost, n_done, out=np.full_like(n_done, np.nan), where=n_done > 0)
    p50, p90 = _rtt_percentiles(np.asarray(rtt_block, dtype=np.int64),
                                np.asarray(rtt, dtype=np.float64), emap, st.shape[0])
    return EntityRound(time, up, loss, p50, p90, coverage)


def _rtt_percentiles(rtt_block: I64, rtt: F64, emap: EntityMap,
                     n_blocks: int) -> tuple[F64, F64]:
    p50 = np.full(len(emap), np.nan)
    p90 = np.full(len(emap), np.nan)
    if rtt.size == 0:
        return p50, p90
    order = np.argsort(rtt_block, kind="stable")
    sb, sv = rtt_block[order], rtt[order] * 1000.0
    starts = np.searchsorted(sb, np.arange(n_blocks + 1))
    for e in range(len(emap)):
        blocks = emap.members[emap.offsets[e]:emap.offsets[e + 1]]
        parts = [sv[starts[b]:starts[b + 1]] for b in blocks.tolist()
                 if starts[b + 1] > starts[b]]
        if parts:
            vals = np.concatenate(parts)
            p50[e], p90[e] = np.percentile(vals, [50, 90])
    return p50, p90


def result_entity_round(result: RoundResult, emap: EntityMap, *,
                        min_coverage: float = 1.0) -> EntityRound:
    resolved = (result.replies.astype(np.int64) + result.unreachable + result.lost)
    lost = result.unreachable.astype(np.int64) + result.lost
    return entity_round(result.states, lost, resolved, result.rtt_block, result.rtt, emap,
                        result.round_start, min_coverage=min_coverage)


def write_entity_rounds(store: Any, rounds: Sequence[EntityRound], emap: EntityMap,
                        step: int, *, source: str = SOURCE) -> int:
    """Write the four per-entity signals of ``rounds`` as points; returns rows written."""
    types: list[str] = []
    codes: list[str] = []
    signals: list[str] = []
    times: list[int] = []
    values: list[float] = []
    for r in rounds:
        t = int(math.floor(r.time / step) * step)
        for name, arr in ((SIGNAL_UP, r.up), (SIGNAL_LOSS, r.loss),
                          (SIGNAL_LATENCY, r.latency_ms), (SIGNAL_LATENCY_P90, r.latency_p90_ms)):
            for e, ref in enumerate(emap.refs):
                types.append(ref.type.value)
                codes.append(ref.code)
                signals.append(name)
                times.append(t)
                values.append(float(arr[e]))
    if not times:
        return 0
    store.write_points(types, codes, signals, np.asarray(times, dtype=np.int64),
                       np.asarray(values, dtype=np.float64), source=source, step=step)
    return len(times)


def write_block_states(store: Any, targets: TargetList, states: I8, time: float, step: int,
                       *, source: str = SOURCE) -> int:
    """Persist one round of block states as ``probing-state`` points of block entities."""
    n = len(targets)
    t = int(math.floor(time / step) * step)
    vals = states.astype(np.float64)
    vals[states == BlockState.UNPROBED] = np.nan
    codes = [targets.block_cidr(i) for i in range(n)]
    times = np.full(n, t, dtype=np.int64)
    kinds = [EntityType.BLOCK.value] * n
    store.write_points(kinds, codes, [SIGNAL_BLOCK_STATE] * n, times, vals, source=source,
                       step=step)
    # The ``probing`` signal of a block entity is its own count of up /24s: 1 up, 0 down,
    # missing while uncertain or unprobed. It exists even for blocks that no geo table maps
    # to a country or AS (a private test bed), so every probed block has a ``probing`` series.
    up = np.where(states == BlockState.UP, 1.0,
                  np.where(states == BlockState.DOWN, 0.0, np.nan))
    store.write_points(kinds, codes, [SIGNAL_UP] * n, times, up, source=source, step=step)
    return n


# ---------------------------------------------------------------------------- JSONL
def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def round_lines(result: RoundResult, targets: TargetList) -> Iterator[dict[str, Any]]:
    """One JSON-able dict per block: the round's facts and the resulting state."""
    med = _block_medians(result, len(targets))
    states = result.states.tolist()
    belief = result.belief.tolist()
    sent, rep = result.sent.tolist(), result.replies.tolist()
    unr, lost = result.unreachable.tolist(), result.lost.tolist()
    start = round(result.round_start, 3)
    start_iso = iso(result.round_start)
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
