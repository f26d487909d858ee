"""Trinocular's Bayesian belief that a /24 block is up, vectorised over numpy arrays.

Method: Quan, Heidemann and Pradkin, "Trinocular: Understanding Internet Reliability Through
Adaptive Probing", SIGCOMM 2013 (§3.2–3.4), with the constants of IODA's implementation
(CAIDA trinarkular ``lib/trinarkular_prober.c``; anchors §2.1).

For a block *b* with ever-responsive addresses E(b) and availability A = A(E(b)) (the mean
reply rate of E(b) in the census), one probe to a random address of E(b) is

* positive with probability ``A`` if the block is up and ``(1 − loss) / 256`` if it is down
  (a down block answers only by accident: a stray reply from one of 256 addresses);
* negative with the complements ``1 − A`` and ``1 − (1 − loss) / 256``.

Bayes' rule turns each probe into an update of B = P(up), applied **per probe** and clamped
to ``[0.01, 0.99]`` after each one (§4.2 of the paper: the clamp keeps one stray answer from
being outweighed by years of history). B > 0.9 is *up*, B < 0.1 is *down*, otherwise
*uncertain*. While a probe moves the belief towards uncertainty (an up block's belief falls,
a down block's rises, an uncertain block stays uncertain) Trinocular sends another *adaptive*
probe, within 15 probes per block per round; a block whose budget runs out is uncertain.

Everything here is pure and works on whole arrays, so one round of millions of blocks is a
handful of numpy operations (see ``benchmarks/bench_probing_belief.py``). State codes are the
small integers of :class:`BlockState`, shared with :mod:`netvigil.pipeline.probing`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
I8 = npt.NDArray[np.int8]
I32 = npt.NDArray[np.int32]
Bools = npt.NDArray[np.bool_]

#: Addresses in a /24: a stray reply from a down block hits one of them.
BLOCK_HOSTS = 256


class BlockState(IntEnum):
    """A block's state after a round (codes match :mod:`netvigil.pipeline.probing`)."""

    UNPROBED = -2
    UNCERTAIN = -1
    DOWN = 0
    UP = 1

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class BeliefModel:
    """Constants of the model; the defaults are trinarkular's (anchors §2.1)."""

    loss: float = 0.01  # packet-loss frequency ("taken from the paper")
    belief_min: float = 0.01
    belief_max: float = 0.99
    up: float = 0.9
    down: float = 0.1
    initial: float = 0.99  # a new block starts believed up, as in trinarkular
    max_probes: int = 15  # per block per round: 1 periodic + 14 adaptive
    recovery_miss: float = 0.2  # recovery sends enough probes that P(all lost | up) < this
    #: Cap on A(E(b)) inside the model. A census in which every address always answered gives
    #: A = 1, and then one lost probe is "proof" of an outage; real blocks lose packets. At
    #: 0.8 an up block needs five losses in a row to be called down (P = 0.3^5 = 0.2 % per
    #: round at 30 % loss, against 2.7 % at a cap of 0.9); the adaptive batch sends them at
    #: once, so detection is no slower, it costs two more probes per real outage.
    max_availability: float = 0.8

    def __post_init__(self) -> None:
        if not 0.0 < self.belief_min < self.down < self.up < self.belief_max < 1.0:
            raise ValueError("need 0 < belief_min < down < up < belief_max < 1")
        if not 0.0 <= self.loss < 1.0:
            raise ValueError("loss must be in [0, 1)")
        if not 0.0 < self.max_availability < 1.0:
            raise ValueError("max_availability must be in (0, 1)")
        if self.max_probes < 1:
            raise ValueError("max_probes must be at least 1")

    @property
    def p_positive_down(self) -> float:
        """P(positive reply | block down) = (1 − loss) / 256."""
        return (1.0 - self.loss) / BLOCK_HOSTS


DEFAULT_MODEL = BeliefModel()


def _avail(availability: npt.ArrayLike, model: BeliefModel) -> F32:
    # A = 1 would make a single lost probe proof of an outage; see BeliefModel.max_availability.
    return np.clip(np.asarray(availability, dtype=np.float32), 1e-4, model.max_availability)


def reply_probabilities(availability: npt.ArrayLike,
                        model: BeliefModel = DEFAULT_MODEL) -> tuple[F32, float]:
    """P(positive | up) per block (= A(E(b)), capped) and P(positive | down) (a constant)."""
    return _avail(availability, model), model.p_positive_down


def initial_beliefs(n: int, model: BeliefModel = DEFAULT_MODEL) -> F32:
    return np.full(n, model.initial, dtype=np.float32)


def update(belief: npt.ArrayLike, positive: npt.ArrayLike, availability: npt.ArrayLike,
           model: BeliefModel = DEFAULT_MODEL) -> F32:
    """One probe per block: the posterior P(up) after a positive (True) or negative reply.

    All arguments broadcast; the result is float32 and clamped to [belief_min, belief_max].
    """
    b = np.asarray(belief, dtype=np.float32)
    pos = np.asarray(positive, dtype=np.bool_)
    a = _avail(availability, model)
    pd = np.float32(model.p_positive_down)
    like_up = np.where(pos, a, np.float32(1.0) - a)
    like_down = np.where(pos, pd, np.float32(1.0) - pd)
    num = like_up * b
    post = num / (num + like_down * (np.float32(1.0) - b))
    out = np.clip(post, np.float32(model.belief_min), np.float32(model.belief_max))
    return np.asarray(out, dtype=np.float32)


def update_sequence(belief: npt.ArrayLike, outcomes: npt.ArrayLike,
                    availability: npt.ArrayLike, model: BeliefModel = DEFAULT_MODEL) -> F32:
    """Apply probes in order: ``outcomes`` is blocks × k with 1 positive, 0 negative, −1 none.

    The loop runs over the k probe columns (k ≤ 15), each step vectorised over the blocks,
    so the per-probe clamp of Trinocular is kept exactly.
    """
    b = np.array(belief, dtype=np.float32, copy=True)
    out = np.asarray(outcomes, dtype=np.int8)
    if out.ndim != 2 or out.shape[0] != b.shape[0]:
        raise ValueError("outcomes must be a blocks × probes matrix")
    a = _avail(availability, model)
    for j in range(out.shape[1]):
        col = out[:, j]
        has = col >= 0
        if not has.any():
            continue
        b = np.where(has, update(b, col == 1, a, model), b)
    return b


def update_counts(belief: npt.ArrayLike, replies: npt.ArrayLike, sent: npt.ArrayLike,
                  availability: npt.ArrayLike, model: BeliefModel = DEFAULT_MODEL) -> F32:
    """Fold ``replies`` positives out of ``sent`` probes into the belief in one step.

    Log-odds form: each positive adds ``log(A / pd)``, each negative ``log((1−A)/(1−pd))``;
    the clamp is applied once at the end. It equals :func:`update_sequence` whenever the clamp
    does not bind between probes (it does not for a block that stays on one side), and it is
    independent of reply order, which makes it the right tool for replays of per-round counts.
    """
    b = np.clip(np.asarray(belief, dtype=np.float64), 1e-9, 1 - 1e-9)
    n = np.asarray(sent, dtype=np.float64)
    r = np.asarray(replies, dtype=np.float64)
    a = _avail(availability, model).astype(np.float64)
    pd = model.p_positive_down
    logit = np.log(b / (1.0 - b)) + r * np.log(a / pd) + (n - r) * np.log((1.0 - a) / (1.0 - pd))
    post = 1.0 / (1.0 + np.exp(-logit))
    post = np.where(n > 0, post, b)
    return np.clip(post, model.belief_min, model.belief_max).astype(np.float32)


def classify(belief: npt.ArrayLike, model: BeliefModel = DEFAULT_MODEL) -> I8:
    """UP above ``model.up``, DOWN below ``model.down``, UNCERTAIN between (int8 codes)."""
    b = np.asarray(belief, dtype=np.float32)
    out = np.full(b.shape, BlockState.UNCERTAIN, dtype=np.int8)
    out[b > np.float32(model.up)] = BlockState.UP
    out[b < np.float32(model.down)] = BlockState.DOWN
    return out


def wants_more(before: npt.ArrayLike, after: npt.ArrayLike,
               model: BeliefModel = DEFAULT_MODEL) -> Bools:
    """trinarkular's rule: probe again if the last probe moved the belief towards uncertainty.

    True where an up block's belief fell, a down block's belief rose, or an uncertain block
    is still uncertain. (Whether budget remains is the caller's business.)
    """
    b0 = np.asarray(before, dtype=np.float32)
    b1 = np.asarray(after, dtype=np.float32)
    up, down = np.float32(model.up), np.float32(model.down)
    # the states of classify(), as comparisons (no int8 codes: this runs per probe batch)
    was_up = b0 > up
    was_down = b0 < down
    still_uncertain = ~(was_up | was_down) & (b1 <= up) & (b1 >= down)
    return np.asarray((was_up & (b1 < b0)) | (was_down & (b1 > b0)) | still_uncertain,
                      dtype=np.bool_)


def probes_to_resolve(belief: npt.ArrayLike, availability: npt.ArrayLike,
                      model: BeliefModel = DEFAULT_MODEL, *, cap: int | None = None) -> I32:
    """How many more probes settle the belief if the evidence keeps pointing the same way.

    For a block at or above the up threshold, or uncertain and leaning down, count the
    negatives needed to fall below ``model.down``; for a block leaning up count the positives
    needed to pass ``model.up``. Closed form in log-odds; capped at ``cap`` (default
    ``model.max_probes``). A prober sends that many at once instead of one at a time, so a
    change resolves within one timeout rather than up to 15 sequential ones.
    """
    b = np.clip(np.asarray(belief, dtype=np.float64), 1e-9, 1 - 1e-9)
    a = _avail(availability, model).astype(np.float64)
    pd = model.p_positive_down
    limit = model.max_probes if cap is None else cap
    logit = np.log(b / (1.0 - b))
    lup, ldown = math.log(model.up / (1 - model.up)), math.log(model.down / (1 - model.down))
    neg_step = np.log((1.0 - pd) / (1.0 - a))  # > 0: how far one negative lowers the logit
    pos_step = np.log(a / pd)  # > 0
    leaning_up = b > 0.5
    # An up block is being checked for an outage: count negatives. An uncertain block leaning
    # up is pushed to up with positives; one leaning down is pushed to down with negatives.
    to_down = np.ceil((logit - ldown) / neg_step + 1e-9)
    to_up = np.ceil((lup - logit) / pos_step + 1e-9)
    state = classify(b, model)
    need = np.where((state == BlockState.UP) | ~leaning_up, to_down, to_up)
    need = np.where(state == BlockState.DOWN, to_up, need)
    return np.clip(need, 1, limit).astype(np.int32)


def recovery_probes(availability: npt.ArrayLike, model: BeliefModel = DEFAULT_MODEL) -> I32:
    """Probes that make P(no reply | block up) < ``recovery_miss``: ceil(log 0.2 / log(1 − A)).

    trinarkular's recovery count for a down block (IODA: ``gen-probelist``), capped at
    ``model.max_probes``.
    """
    a = _avail(availability, model).astype(np.float64)
    n = np.ceil(math.log(model.recovery_miss) / np.log1p(-a))
    return np.clip(n, 1, model.max_probes).astype(np.int32)


def recovery_due(rounds_down: npt.ArrayLike) -> Bools:
    """Backoff for recovery probing of a block down for ``rounds_down`` rounds (1 = first).

    Rounds 1–4 and 8, then every 16th (trinarkular). The periodic probe is sent every round
    regardless; this only gates the extra recovery probes.
    """
    k = np.asarray(rounds_down, dtype=np.int64)
    return np.asarray(((k >= 1) & (k <= 4)) | (k == 8) | ((k > 0) & (k % 16 == 0)),
                      dtype=np.bool_)
