"""Tier-0 facts: what every source emits, before any judgement (ooni/data: record facts early).

One vocabulary for every source: the prober, MRT archives, RIS Live, OONI (later), imported
series files and the reconstructions under :mod:`netvigil.scenarios`. Sources build these and
hand them to a :class:`FactSink`; only :mod:`netvigil.pipeline` turns facts into series and
writes the store. A source never writes the store itself, so a reconstruction and real data
take the same path from here on.

All times are unix seconds; arrays are columnar numpy (one row per unit) so a fact can be
sharded by unit (blocks, prefixes, ASes) and merged by concatenation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from netvigil.model.entities import EntityRef

U8 = npt.NDArray[np.uint8]
U16 = npt.NDArray[np.uint16]
U32 = npt.NDArray[np.uint32]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


def _empty_i64() -> I64:
    return np.empty(0, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class ProbeRound:
    """Active-probing outcomes of one round from one vantage point (Trinocular, anchors §2.1).

    Columnar over the round's /24 blocks. ``sent == 0`` means the block was not probed this
    round: no observation, never "down". The belief and the up/down judgement are *not* facts:
    the pipeline derives them with :mod:`netvigil.sources.probing.belief`, the one belief
    implementation, chaining per-block beliefs from round to round.
    """

    vantage: str
    round_start: float  # unix seconds
    round_seconds: int
    block_starts: U32  # network address of each /24
    availability: F32  # census A(E(b)) per block: the belief model's prior knowledge
    sent: U8  # probes sent this round
    replies: U8  # echo replies
    unreachable: U8  # ICMP errors
    lost: U8  # timeouts
    rtt_block: I32 = field(default_factory=lambda: np.empty(0, dtype=np.int32))
    rtt: F64 = field(default_factory=lambda: np.empty(0, dtype=np.float64))  # seconds
    #: per block, entities it counts in *instead of* its geo location (private test beds);
    #: ``None`` = locate every block with the geo tables as of the round.
    entity_overrides: tuple[tuple[EntityRef, ...] | None, ...] | None = None

    def __len__(self) -> int:
        return int(self.block_starts.size)


@dataclass(frozen=True, eq=False)
class BgpVisibility:
    """Per-bin BGP visibility (anchors §1.2), measured from per-peer route observations.

    What full-feed peers collectively carried at the end of ``[time, time + step)``: every
    visible IPv4 /24 with the origin AS of its most-specific route, visible IPv6 /48 runs
    and per-origin /48 counts. ``full_feed_v4 == 0`` means no full-feed peer was seen: the bin
    is missing, not empty. ``silent_collectors`` lists collectors that sent nothing in the bin
    (a source-health fact, never a drop).
    """

    time: int  # bin start
    step: int
    full_feed_v4: int
    full_feed_v6: int
    v4_blocks: U32  # network address of every visible /24
    v4_origin: U32  # origin AS of each visible /24 (0 = unknown)
    v6_starts: I64 = field(default_factory=_empty_i64)  # visible /48 runs [start, end)
    v6_ends: I64 = field(default_factory=_empty_i64)
    v6_by_origin: dict[int, int] = field(default_factory=dict)
    silent_collectors: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class PlatformTests:
    """Platform (OONI-style) test outcomes per time bin × (country, AS) × platform.

    Counts, not judgements of the whole country: ``ok`` reached the service, ``anomaly`` did
    not (or looked tampered), ``confirmed`` matched a known blockpage, ``failure`` could not
    run (neither reachable nor blocked: excluded from the reachable share).
    Arrays are ``[bins, columns, platforms]``; column ``j`` is ``(probe_cc[j], asns[j])``.
    """

    start: int
    step: int
    platforms: tuple[str, ...]
    probe_cc: tuple[str, ...]
    asns: I64
    ok: U16
    anomaly: U16
    confirmed: U16
    failure: U16

    @property
    def n_bins(self) -> int:
        return int(self.ok.shape[0])


@dataclass(frozen=True, eq=False)
class PointBatch:
    """Imported points (CSV, IODA JSON, any outside tool): already per entity and signal.

    Codes canonical (``model.make_ref``); ``value`` NaN = missing. ``step`` is the step the
    file declares (IODA's ``step``), or None to let the store infer it.
    """

    entity_types: npt.NDArray[np.object_]
    entity_codes: npt.NDArray[np.object_]
    signals: npt.NDArray[np.object_]
    times: I64
    values: F64
    source: str
    step: int | None = None

    def __len__(self) -> int:
        return int(self.times.size)


Fact = ProbeRound | BgpVisibility | PlatformTests | PointBatch


class FactSink(Protocol):
    """Where a source hands its facts. :class:`netvigil.pipeline.Pipeline` is the one real
    sink; tests may collect facts in a list.

    ``flush(cursors)`` marks a consistent point (end of a file, of a round, of a bin): the
    series derived from every fact emitted before it and the source's ``cursors`` (progress
    and health bookkeeping, ``key -> JSON text``) become durable together or not at all, so a
    crash never leaves series without the cursor that says they were written, or the reverse.
    ``cursor(key)`` reads one back (``None`` if never written): how a source resumes.
    """

    def emit(self, fact: Fact) -> None: ...

    def flush(self, cursors: Mapping[str, str] | None = None) -> None: ...

    def cursor(self, key: str) -> str | None: ...
