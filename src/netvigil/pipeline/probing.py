"""Active probing facts → per-/24 Trinocular belief → block state → ``probing`` (up /24s).

The belief model is Trinocular's (Quan et al. 2013; trinarkular, anchors §2.1): for a block
with census availability A = A(E(b)), a positive reply has likelihood A when the block is up
and ``loss`` (0.01) when it is down; a negative reply has 1 − A and 1 − loss. Bayes' rule in
log-odds form makes the update of one round a sum,

    logit B' = logit B + r·log(A/loss) + (n − r)·log((1 − A)/(1 − loss)),

for n probes with r replies, so it does not depend on the order of replies inside the round;
the belief is then clamped to [0.01, 0.99] as trinarkular does. A block is **up** when
B > 0.9, **down** when B < 0.1, else uncertain. A round in which the block was not probed
(``sent == 0``) leaves the belief as it was and is not an observation.

Per entity the signal counts up blocks per 600 s round. A round in which *no* block of an
entity was probed is missing (NaN), not zero.

Partition key: ``(round window, block shard)``. Blocks are independent, so any shard of blocks
(e.g. by /8 or by AS) aggregates on its own and shards merge by addition
(:meth:`EntityMatrix.merge`). Time windows chain through the beliefs: pass the ``final_logit``
of window k as ``prior_logit`` of window k+1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from netvigil.pipeline.entities import EntityMatrix, Grouping, group_sum
from netvigil.sources.kz2022 import ProbingFacts

F64 = npt.NDArray[np.float64]
I8 = npt.NDArray[np.int8]

SIGNAL = "probing"
UP, DOWN, UNCERTAIN, UNPROBED = 1, 0, -1, -2


def _logit(p: float) -> float:
    return float(np.log(p / (1.0 - p)))


@dataclass(frozen=True)
class BeliefModel:
    """trinarkular's constants (anchors §2.1)."""

    loss: float = 0.01
    belief_min: float = 0.01
    belief_max: float = 0.99
    up: float = 0.9
    down: float = 0.1


def update_belief(logit_b: F64, sent: npt.ArrayLike, replies: npt.ArrayLike,
                  availability: npt.ArrayLike, model: BeliefModel = BeliefModel()) -> F64:
    """One round of the Bayesian update for many blocks at once (log-odds, then clamp)."""
    n = np.asarray(sent, dtype=np.float64)
    r = np.asarray(replies, dtype=np.float64)
    a = np.clip(np.asarray(availability, dtype=np.float64), 1e-6, 1 - 1e-6)
    step = r * np.log(a / model.loss) + (n - r) * np.log((1.0 - a) / (1.0 - model.loss))
    out = np.clip(logit_b + step, _logit(model.belief_min), _logit(model.belief_max))
    return np.asarray(np.where(n > 0, out, logit_b), dtype=np.float64)


def block_states(facts: ProbingFacts, *, rounds: slice | None = None,
                 blocks: npt.NDArray[np.intp] | None = None, prior_logit: F64 | None = None,
                 model: BeliefModel | None = None) -> tuple[I8, F64]:
    """Per round × block state codes (UP/DOWN/UNCERTAIN/UNPROBED) and the final log-odds."""
    m = model or BeliefModel(loss=facts.loss)
    rs = rounds or slice(0, facts.n_rounds)
    cols = np.arange(facts.block_starts.size) if blocks is None else blocks
    sent = facts.sent[rs][:, cols]
    rep = facts.replies[rs][:, cols]
    avail = facts.availability[cols]
    logit_b = (np.full(cols.size, _logit(facts.initial_belief)) if prior_logit is None
               else np.asarray(prior_logit, dtype=np.float64).copy())
    l_up, l_down = _logit(m.up), _logit(m.down)
    l_min, l_max = _logit(m.belief_min), _logit(m.belief_max)
    a = np.clip(avail.astype(np.float64), 1e-6, 1 - 1e-6)
    lpos = np.log(a / m.loss)
    lneg = np.log((1.0 - a) / (1.0 - m.loss))
    states = np.empty(sent.shape, dtype=np.int8)
    chunk = 288  # rounds per vectorised slab (two days of 600 s rounds)
    for c0 in range(0, sent.shape[0], chunk):
        n = sent[c0:c0 + chunk].astype(np.float64)
        r = rep[c0:c0 + chunk].astype(np.float64)
        steps = r * lpos + (n - r) * lneg  # 0 where the block was not probed
        trail = np.empty_like(steps)
        for i in range(steps.shape[0]):
            # An unprobed round adds 0 and the clamp is idempotent: the belief stays put.
            logit_b = np.clip(logit_b + steps[i], l_min, l_max)
            trail[i] = logit_b
        st = np.where(trail > l_up, UP, np.where(trail < l_down, DOWN, UNCERTAIN))
        states[c0:c0 + chunk] = np.where(n > 0, st, UNPROBED)
    return states, logit_b


def aggregate_probing(facts: ProbingFacts, groupings: list[Grouping], *,
                      rounds: slice | None = None, blocks: npt.NDArray[np.intp] | None = None,
                      prior_logit: F64 | None = None) -> tuple[list[EntityMatrix], F64]:
    """``probing`` (up /24s per round) for each grouping; groupings index the chosen blocks.

    Returns one :class:`EntityMatrix` per grouping and the final log-odds (to chain windows).
    """
    states, final = block_states(facts, rounds=rounds, blocks=blocks, prior_logit=prior_logit)
    rs = rounds or slice(0, facts.n_rounds)
    first = rs.start or 0
    up = states == UP
    probed = states != UNPROBED
    out = [
        EntityMatrix(SIGNAL, facts.start + first * facts.step, facts.step, g.refs,
                     group_sum(up, g), group_sum(probed, g))
        for g in groupings
    ]
    return out, final
