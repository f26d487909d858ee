"""Trinocular rounds over an :class:`IcmpEngine`: periodic, adaptive and recovery probes.

A round (600 s by default, IODA's ``ping-slash24`` step) is split into slices (60 by
default, as trinarkular). Every block gets a **stable pseudo-random offset** inside the
round — a hash of its network address and the prober's seed — and its periodic probe goes
out in the slice holding that offset, the same place every round, so consecutive rounds see
each block at the same spacing and load is spread evenly. Offsets fill the first
``round − 3·timeout`` seconds so that adaptive follow-ups finish before the round closes.

Each outcome updates the block's belief (:mod:`.belief`); when a batch is complete and its
last outcome moved the belief towards uncertainty (trinarkular's rule) the prober sends
``probes_to_resolve`` more probes **at once**, to other addresses of E(b), within the
per-block budget (15 per round). Trinarkular sends them one by one; batching resolves an
outage within about one timeout instead of up to 15, at the cost of occasionally spending a
probe the sequential scheme would have saved.

Down blocks still get their periodic probe every round; on the recovery schedule (rounds
1–4 and 8 of an outage, then every 16th) they get ``ceil(log 0.2 / log(1 − A))`` probes,
enough that a recovered sparse block is noticed.

At the end of each round the prober emits a :class:`RoundResult` (states, beliefs and counts
per block, RTT samples) and resets the counters. Outcomes arriving after the close count in
the next round; beliefs carry over.
"""

from __future__ import annotations

import asyncio
import math
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from netvigil.sources.probing import belief as bm
from netvigil.sources.probing.engine import LOST, REPLY, UNREACHABLE, IcmpEngine
from netvigil.sources.probing.targets import TargetList

U8 = npt.NDArray[np.uint8]
U16 = npt.NDArray[np.uint16]
I8 = npt.NDArray[np.int8]
I32 = npt.NDArray[np.int32]
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ProberConfig:
    round_seconds: float = 600.0
    slices: int = 60
    timeout: float = 3.0
    rate: float = 10_000.0  # global probes per second
    seed: int = 0
    vantage: str = field(default_factory=socket.gethostname)
    model: bm.BeliefModel = bm.DEFAULT_MODEL
    align: bool = False  # start rounds on multiples of round_seconds (trinarkular does)

    def __post_init__(self) -> None:
        if self.round_seconds <= 0 or self.slices < 1 or self.timeout <= 0 or self.rate <= 0:
            raise ValueError("round_seconds, slices, timeout and rate must be positive")
        if self.model.max_probes > 255:
            raise ValueError("max_probes must fit in a byte")

    @property
    def schedule_span(self) -> float:
        """Seconds of the round over which periodic probes are spread."""
        return max(self.round_seconds - 3 * self.timeout, self.round_seconds / 2)


@dataclass(frozen=True, eq=False)
class RoundResult:
    """What one prober saw of every block in one round (tier-0 facts plus the belief)."""

    vantage: str
    index: int
    round_start: float  # unix seconds
    round_seconds: float
    states: I8  # BlockState codes; UNPROBED where no outcome arrived this round
    belief: F32  # belief after the round
    sent: U8
    replies: U8
    unreachable: U8
    lost: U8
    rtt_block: I32  # block index of each RTT sample
    rtt: F64  # seconds
    backlog: int  # probes still queued at the close (rate too low if > 0 every round)


def stable_offsets(block_starts: npt.NDArray[np.uint32], seed: int = 0) -> F64:
    """Per block a fraction in [0, 1): splitmix64 of (network address, seed).

    Stable across rounds and runs for the same seed, uncorrelated with address order.
    """
    with np.errstate(over="ignore"):
        z = block_starts.astype(np.uint64) + np.uint64((seed * 0x9E3779B97F4A7C15) % 2**64)
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return np.asarray((z >> np.uint64(11)).astype(np.float64) / float(1 << 53))


class Prober:
    """Runs rounds over one target list from one vantage point."""

    def __init__(self, targets: TargetList, config: ProberConfig | None = None, *,
                 sock: socket.socket | None = None,
                 initial_belief: F32 | None = None) -> None:
        self.targets = targets
        self.config = cfg = config or ProberConfig()
        n = len(targets)
        self.model = cfg.model
        self.belief = (bm.initial_beliefs(n, cfg.model) if initial_belief is None
                       else np.array(initial_belief, dtype=np.float32))
        self._avail = targets.availability
        self.sent = np.zeros(n, dtype=np.uint8)
        self.replies = np.zeros(n, dtype=np.uint8)
        self.unreachable = np.zeros(n, dtype=np.uint8)
        self.lost = np.zeros(n, dtype=np.uint8)
        self.inflight = np.zeros(n, dtype=np.uint8)
        self.before_last = self.belief.copy()  # belief before each block's latest outcome
        self.rounds_down = np.zeros(n, dtype=np.int32)
        self.cursor = (stable_offsets(targets.block_starts, cfg.seed + 1) * 256).astype(np.uint16)
        offs = stable_offsets(targets.block_starts, cfg.seed)
        self.order = np.argsort(offs, kind="stable")
        bounds = np.searchsorted(offs[self.order], np.arange(cfg.slices + 1) / cfg.slices)
        bounds[-1] = n
        self.slice_bounds = bounds
        self._rtt_block: list[int] = []
        self._rtt: list[float] = []
        self._sock = sock
        self.engine: IcmpEngine | None = None
        self._pd = cfg.model.p_positive_down

    # ------------------------------------------------------------------ outcomes
    def _probe(self, block: int, count: int) -> int:
        """Queue up to ``count`` probes for ``block`` within its budget; returns how many."""
        assert self.engine is not None
        room = self.model.max_probes - int(self.sent[block])
        k = min(count, room)
        if k <= 0:
            return 0
        cur = int(self.cursor[block])
        for j in range(k):
            self.engine.enqueue(block, cur + j)
        self.cursor[block] = (cur + k) % 65536
        self.sent[block] += k
        self.inflight[block] += k
        return k

    def on_result(self, block: int, outcome: int, rtt: float) -> None:
        """Engine callback: fold one outcome into the belief; maybe ask for more probes."""
        positive = outcome == REPLY
        if positive:
            self.replies[block] += 1
            self._rtt_block.append(block)
            self._rtt.append(rtt)
        elif outcome == UNREACHABLE:
            self.unreachable[block] += 1
        else:
            self.lost[block] += 1
        b = float(self.belief[block])
        self.before_last[block] = b
        a = min(max(float(self._avail[block]), 1e-4), self.model.max_availability)
        pd = self._pd
        up, down = (a, pd) if positive else (1.0 - a, 1.0 - pd)
        post = up * b / (up * b + down * (1.0 - b))
        m = self.model
        self.belief[block] = min(max(post, m.belief_min), m.belief_max)
        if self.inflight[block] > 0:
            self.inflight[block] -= 1
        if self.inflight[block] == 0:
            self._after_batch(block)

    def _after_batch(self, block: int) -> None:
        # Scalar twins of bm.wants_more / bm.probes_to_resolve: this runs once per reply.
        # Judged on the batch's last outcome, as trinarkular judges each probe: a batch ending
        # in a loss that dents an up block asks for more even if an earlier reply lifted it.
        m = self.model
        b0, b1 = float(self.before_last[block]), float(self.belief[block])
        s0 = 1 if b0 > m.up else (0 if b0 < m.down else -1)
        s1 = 1 if b1 > m.up else (0 if b1 < m.down else -1)
        more = (s0 == 1 and b1 < b0) or (s0 == 0 and b1 > b0) or (s0 == -1 and s1 == -1)
        if more and self._probe(block, _probes_to_resolve(b1, float(self._avail[block]), m)) == 0:
            # Budget spent and still unresolved. trinarkular always resets to 0.5 (uncertain);
            # we do so only when this round's own evidence leans against the block (fewer
            # replies than failures), so a lossy but answering block is not blanked out.
            failures = int(self.lost[block]) + int(self.unreachable[block])
            if int(self.replies[block]) < failures:
                self.belief[block] = 0.5

    # ------------------------------------------------------------------ rounds
    def _start_slice(self, s: int) -> None:
        lo, hi = int(self.slice_bounds[s]), int(self.slice_bounds[s + 1])
        if hi <= lo:
            return
        blocks = self.order[lo:hi]
        down = self.rounds_down[blocks] > 0
        due = bm.recovery_due(self.rounds_down[blocks]) & down
        extra = np.where(due, bm.recovery_probes(self.targets.availability[blocks], self.model),
                         1)
        for blk, k in zip(blocks.tolist(), extra.tolist(), strict=True):
            self._probe(blk, k)

    def _close_round(self, index: int, wall_start: float) -> RoundResult:
        assert self.engine is not None
        states = bm.classify(self.belief, self.model)
        resolved = (self.replies.astype(np.int32) + self.unreachable + self.lost) > 0
        states = np.where(resolved, states, np.int8(bm.BlockState.UNPROBED)).astype(np.int8)
        result = RoundResult(
            self.config.vantage, index, wall_start, self.config.round_seconds, states,
            self.belief.copy(), self.sent.copy(), self.replies.copy(),
            self.unreachable.copy(), self.lost.copy(),
            np.asarray(self._rtt_block, dtype=np.int32), np.asarray(self._rtt, dtype=np.float64),
            self.engine.backlog,
        )
        is_down = bm.classify(self.belief, self.model) == bm.BlockState.DOWN
        self.rounds_down = np.where(is_down, self.rounds_down + 1, 0).astype(np.int32)
        for arr in (self.sent, self.replies, self.unreachable, self.lost):
            arr[:] = 0
        # Probes still in flight keep their budget slot: count them as sent in the new round.
        self.sent[:] = self.inflight
        self._rtt_block, self._rtt = [], []
        return result

    async def run(self, rounds: int | None,
                  on_round: Callable[[RoundResult], Awaitable[None] | None]) -> None:
        """Probe ``rounds`` rounds (None: until cancelled), calling ``on_round`` after each."""
        cfg = self.config
        self.engine = IcmpEngine(self.targets, self.on_result, rate=cfg.rate,
                                 timeout=cfg.timeout, sock=self._sock)
        await self.engine.start()
        loop = asyncio.get_running_loop()
        if cfg.align:
            # Wait for the next wall-clock multiple of the round, so that rounds of several
            # vantage points fall in the same bins.
            now = time.time()
            await asyncio.sleep(math.ceil(now / cfg.round_seconds) * cfg.round_seconds - now)
        t0, wall0 = loop.time(), time.time()
        if cfg.align:
            wall0 = round(wall0 / cfg.round_seconds) * cfg.round_seconds
        try:
            index = 0
            while rounds is None or index < rounds:
                start = t0 + index * cfg.round_seconds
                for s in range(cfg.slices):
                    await _sleep_until(loop, start + s * cfg.schedule_span / cfg.slices)
                    self._start_slice(s)
                await _sleep_until(loop, start + cfg.round_seconds)
                res = self._close_round(index, wall0 + index * cfg.round_seconds)
                ret = on_round(res)
                if ret is not None:
                    await ret
                index += 1
        finally:
            await self.engine.close()


def _probes_to_resolve(b: float, a: float, m: bm.BeliefModel) -> int:
    """Scalar :func:`belief.probes_to_resolve` (same formula, no array overhead)."""
    b = min(max(b, 1e-9), 1 - 1e-9)
    a = min(max(a, 1e-4), m.max_availability)
    pd = m.p_positive_down
    logit = math.log(b / (1 - b))
    state = 1 if b > m.up else (0 if b < m.down else -1)
    if state == 0 or (state == -1 and b > 0.5):
        need = (math.log(m.up / (1 - m.up)) - logit) / math.log(a / pd)
    else:
        need = (logit - math.log(m.down / (1 - m.down))) / math.log((1 - pd) / (1 - a))
    return int(min(max(math.ceil(need + 1e-9), 1), m.max_probes))


async def _sleep_until(loop: asyncio.AbstractEventLoop, when: float) -> None:
    delay = when - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)


def loss_share(result: RoundResult) -> float:
    """Share of resolved probes without an echo reply in a round (NaN if none resolved)."""
    done = int(result.replies.sum()) + int(result.unreachable.sum()) + int(result.lost.sum())
    return math.nan if done == 0 else 1.0 - int(result.replies.sum()) / done


__all__ = ["LOST", "REPLY", "UNREACHABLE", "Prober", "ProberConfig", "RoundResult",
           "loss_share", "stable_offsets"]
