"""Several vantage points, one picture: the combination rule and prober-health facts.

The rule (:func:`combine`) is applied where facts become series, in
:class:`netvigil.pipeline.probing.ProbingAggregator`, per round bin
(``floor(round_start / step)``) and block, over what the vantage points that *reported* saw:

* **up** if any vantage point saw it up — the block answered someone, so it is connected;
  a path problem of one vantage point is not an outage of the block;
* **down** only if every reporting vantage point saw it down;
* **uncertain** otherwise; **unprobed** if no vantage point reported it.

Silence is not evidence. A vantage point that reports nothing for a bin is recorded as
``silent`` in :class:`VantageHealth` — a prober-health fact — and simply does not vote; the
``probing`` value of an entity becomes missing (NaN) only when too few of its blocks were
reported by anyone (``min_coverage``), never a drop. A vantage point that reports almost
everything down while the others see the same blocks up is flagged ``isolated`` (its own
uplink is the likelier culprit). Which vantage point saw what stays available per block
(:meth:`Collected.seen_by`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from netvigil.sources.probing.belief import BlockState
from netvigil.sources.probing.signals import BlockRound
from netvigil.sources.probing.targets import TargetList

I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

UNPROBED = np.int8(BlockState.UNPROBED)


@dataclass(frozen=True)
class VantageHealth:
    vantage: str
    time: int  # bin start
    blocks_reported: int
    blocks_up: int
    status: str  # "ok" | "silent" | "partial" | "isolated"


@dataclass(frozen=True, eq=False)
class Collected:
    """Combined states per bin × block, and the per-vantage matrices they came from."""

    vantages: tuple[str, ...]
    times: I64  # bin starts
    step: int
    per_vantage: I8  # vantage × bin × block (UNPROBED where a vantage did not report)
    states: I8  # bin × block, combined
    resolved: I64  # bin × block: probes answered or given up on, summed over vantages
    lost: I64
    rtt_median: F64  # bin × block: median over vantages of per-block medians (ms)
    health: tuple[VantageHealth, ...]

    def seen_by(self, t: int, block: int) -> dict[str, str]:
        """What each vantage point reported for ``block`` in bin ``t`` (index)."""
        out: dict[str, str] = {}
        for v, name in enumerate(self.vantages):
            code = int(self.per_vantage[v, t, block])
            if code != BlockState.UNPROBED:
                out[name] = BlockState(code).label
        return out


def combine(per_vantage: I8) -> I8:
    """Combine vantage × … state codes by the rule in the module docstring."""
    pv = np.asarray(per_vantage, dtype=np.int8)
    reported = pv != UNPROBED
    any_up = (pv == BlockState.UP).any(axis=0)
    n_rep = reported.sum(axis=0)
    all_down = ((pv == BlockState.DOWN) | ~reported).all(axis=0) & (n_rep > 0)
    out = np.full(pv.shape[1:], BlockState.UNCERTAIN, dtype=np.int8)
    out[all_down] = BlockState.DOWN
    out[any_up] = BlockState.UP
    out[n_rep == 0] = UNPROBED
    return out


def collect(rows: Iterable[BlockRound], targets: TargetList, step: int, *,
            expected: Sequence[str] = (), isolated_ratio: float = 0.2) -> Collected:
    """Merge the prober-reported states of round lines from any number of vantage points:
    the health facts (silent, partial, isolated) and who saw what. The series come from the
    pipeline (:func:`netvigil.sources.probing.signals.facts_from_lines`).

    ``expected`` names vantage points that should have reported every bin (a silent one is
    listed in the health facts even if it never reported at all). Lines for blocks not in
    ``targets`` are ignored.
    """
    rows = list(rows)
    names = sorted({r.vantage for r in rows} | set(expected))
    vidx = {n: i for i, n in enumerate(names)}
    cidr = {targets.block_cidr(i): i for i in range(len(targets))}
    bins = sorted({int(math.floor(r.round_start / step)) for r in rows})
    tidx = {b: i for i, b in enumerate(bins)}
    nv, nt, nb = len(names), len(bins), len(targets)
    pv = np.full((nv, nt, nb), UNPROBED, dtype=np.int8)
    resolved = np.zeros((nt, nb), dtype=np.int64)
    lost = np.zeros((nt, nb), dtype=np.int64)
    rtts = np.full((nv, nt, nb), np.nan)
    for r in rows:
        b = cidr.get(r.block)
        if b is None:
            continue
        v, t = vidx[r.vantage], tidx[int(math.floor(r.round_start / step))]
        pv[v, t, b] = r.state
        resolved[t, b] += r.replies + r.lost
        lost[t, b] += r.lost
        rtts[v, t, b] = r.rtt_ms_median
    states = combine(pv) if nv else np.full((nt, nb), UNPROBED, dtype=np.int8)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            rtt_med = np.nanmedian(rtts, axis=0) if nv else np.full((nt, nb), np.nan)
    health = _health(pv, names, bins, step, isolated_ratio)
    return Collected(tuple(names), np.asarray(bins, dtype=np.int64) * step, step, pv, states,
                     resolved, lost, rtt_med, tuple(health))


def _health(pv: I8, names: Sequence[str], bins: Sequence[int], step: int,
            isolated_ratio: float) -> list[VantageHealth]:
    out: list[VantageHealth] = []
    nb = pv.shape[2]
    for t, b in enumerate(bins):
        reported = pv[:, t, :] != UNPROBED
        up = pv[:, t, :] == BlockState.UP
        for v, name in enumerate(names):
            n_rep, n_up = int(reported[v].sum()), int(up[v].sum())
            if n_rep == 0:
                status = "silent"
            else:
                others = [int((up[o] & reported[v]).sum()) for o in range(len(names)) if o != v]
                best = max(others, default=0)
                if best >= 5 and n_up < isolated_ratio * best:
                    status = "isolated"
                elif n_rep < nb:
                    status = "partial"
                else:
                    status = "ok"
            out.append(VantageHealth(name, b * step, n_rep, n_up, status))
    return out
