"""Rounds, adaptive and recovery probing, pacing and the allow-list — over a fake raw socket.

The fake stands in for the kernel: ``sendto`` records the request and, depending on the
scenario, answers with an echo reply or an ICMP unreachable quoting it, or stays silent.
No privileges and no packets; the real-packet scenarios are in test_probing_netns.py.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Callable

import numpy as np
import pytest

from netvigil.sources.probing import icmp
from netvigil.sources.probing.belief import BlockState
from netvigil.sources.probing.engine import IcmpEngine, TargetRefused
from netvigil.sources.probing.prober import Prober, ProberConfig, RoundResult, stable_offsets
from netvigil.sources.probing.targets import TargetList, from_blocks

BASE = (198 << 24) | (18 << 16)
VP = (198 << 24) | (19 << 16) | 1


def ip_header(src: int, dst: int, n: int) -> bytes:
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + n, 0, 0, 64, 1, 0,
                       src.to_bytes(4, "big"), dst.to_bytes(4, "big"))


class FakeRawSocket:
    """Answers like a network whose behaviour per address is ``verdict(addr) -> str``."""

    def __init__(self, verdict: Callable[[int], str]) -> None:
        self.verdict = verdict
        self.ours, self.kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sent: list[tuple[float, int]] = []

    def fileno(self) -> int:
        return self.ours.fileno()

    def setblocking(self, flag: bool) -> None:
        self.ours.setblocking(flag)

    def recv(self, n: int) -> bytes:
        return self.ours.recv(n)

    def sendto(self, packet: bytes, dest: tuple[str, int]) -> int:
        addr = int.from_bytes(socket.inet_aton(dest[0]), "big")
        assert icmp.checksum(packet) == 0
        self.sent.append((time.time(), addr))
        what = self.verdict(addr)
        if what == "reply":
            body = bytes([0, 0]) + packet[2:]
            self.kernel.send(ip_header(addr, VP, len(body)) + body)
        elif what == "unreachable":
            quote = ip_header(VP, addr, len(packet)) + packet[:8]
            body = struct.pack("!BBHI", 3, 13, 0, 0) + quote
            self.kernel.send(ip_header(BASE + 0xFFFE, VP, len(body)) + body)
        return len(packet)

    def close(self) -> None:
        self.ours.close()
        self.kernel.close()


def lab_targets(n: int, availability: float = 0.8, hosts: int = 20) -> TargetList:
    blocks = [(BASE + (k << 8), [BASE + (k << 8) + h for h in range(1, hosts + 1)], availability)
              for k in range(n)]
    return from_blocks(blocks).targets


def run_rounds(targets: TargetList, sock: FakeRawSocket, rounds: int, *,
               between: Callable[[RoundResult], None] | None = None,
               **cfg: float) -> list[RoundResult]:
    config = ProberConfig(round_seconds=cfg.get("round_seconds", 0.3), slices=3,
                          timeout=cfg.get("timeout", 0.05), rate=cfg.get("rate", 20_000),
                          vantage="fake")
    out: list[RoundResult] = []

    def keep(r: RoundResult) -> None:
        out.append(r)
        if between is not None:
            between(r)

    prober = Prober(targets, config, sock=sock)  # type: ignore[arg-type]
    asyncio.run(prober.run(rounds, keep))
    sock.close()
    return out


def block_of(addr: int) -> int:
    return (addr - BASE) >> 8


def test_healthy_blocks_are_up_every_round_with_one_probe_each() -> None:
    res = run_rounds(lab_targets(6), FakeRawSocket(lambda a: "reply"), 3)
    for r in res:
        assert (r.states == BlockState.UP).all()
        assert r.sent.tolist() == [1] * 6 and r.replies.tolist() == [1] * 6
        assert r.rtt.size == 6


def test_block_going_silent_is_down_in_that_round_and_others_stay_up() -> None:
    dark: set[int] = set()
    res = run_rounds(lab_targets(4), FakeRawSocket(
        lambda a: "drop" if block_of(a) in dark else "reply"), 4,
        between=lambda r: dark.add(2) if r.index == 1 else None)
    states = [r.states.tolist() for r in res]
    assert states[0] == states[1] == [1, 1, 1, 1]
    assert states[2] == states[3] == [1, 1, 0, 1]
    assert 2 <= res[2].sent[2] <= 15  # adaptive probes confirmed the outage


def test_unreachable_replies_resolve_the_block_as_down() -> None:
    res = run_rounds(lab_targets(3), FakeRawSocket(
        lambda a: "unreachable" if block_of(a) == 1 else "reply"), 2)
    assert res[0].states.tolist() == [1, 0, 1]
    assert res[0].unreachable[1] == res[0].sent[1] and res[0].lost[1] == 0


def test_sparse_silent_block_spends_its_budget_and_stays_uncertain() -> None:
    t = from_blocks([(BASE, [BASE + h for h in range(1, 21)], 0.15)]).targets
    res = run_rounds(t, FakeRawSocket(lambda a: "drop"), 1)
    assert res[0].sent[0] == 15
    assert res[0].states[0] == BlockState.UNCERTAIN


def test_down_block_comes_back_up_in_the_round_it_returns() -> None:
    dark = {0}
    res = run_rounds(lab_targets(2), FakeRawSocket(
        lambda a: "drop" if block_of(a) in dark else "reply"), 4,
        between=lambda r: dark.clear() if r.index == 1 else None)
    assert [r.states[0] for r in res] == [0, 0, 1, 1]


def test_recovery_probes_follow_the_backoff_schedule() -> None:
    t = from_blocks([(BASE, [BASE + h for h in range(1, 21)], 0.5)]).targets
    res = run_rounds(t, FakeRawSocket(lambda a: "drop"), 11, round_seconds=0.15, timeout=0.02)
    # round 0 detects the outage; rounds_down is k in round k; recovery = ceil(log .2/log .5) = 3
    sent = [int(r.sent[0]) for r in res]
    assert all(r.states[0] == BlockState.DOWN for r in res[1:])
    assert sent[1:5] == [3, 3, 3, 3]  # rounds 1-4 of the outage
    assert sent[5:8] == [1, 1, 1]  # only the periodic probe
    assert sent[8] == 3  # round 8
    assert sent[9:11] == [1, 1]


def test_prober_only_sends_to_listed_addresses() -> None:
    t = lab_targets(5)
    fake = FakeRawSocket(lambda a: "drop" if a % 3 == 0 else "reply")
    run_rounds(t, fake, 3)
    assert fake.sent and all(t.contains(addr) for _, addr in fake.sent)


def test_engine_refuses_an_address_outside_the_list() -> None:
    t = lab_targets(1)
    fake = FakeRawSocket(lambda a: "reply")
    eng = IcmpEngine(t, lambda *a: None, sock=fake)  # type: ignore[arg-type]
    with pytest.raises(TargetRefused, match="not in the target list"):
        eng.probe_address((8 << 24) | (8 << 16) | (8 << 8) | 8)
    with pytest.raises(TargetRefused):
        eng.probe_address(BASE + 200)  # right block, not in E(b)
    eng.probe_address(BASE + 3)
    assert eng.backlog == 1
    fake.close()


def test_global_rate_limit_paces_the_sender() -> None:
    t = lab_targets(200)
    fake = FakeRawSocket(lambda a: "reply")
    run_rounds(t, fake, 1, rate=500, round_seconds=0.6, timeout=0.05)
    times = np.array([s for s, _ in fake.sent])
    span = times.max() - times.min()
    assert len(times) == 200
    assert span >= 200 / 500 * 0.8  # cannot be faster than the limit (small burst allowed)


def test_each_block_is_probed_at_a_stable_offset_every_round() -> None:
    t = lab_targets(30)
    fake = FakeRawSocket(lambda a: "reply")
    res = run_rounds(t, fake, 3, round_seconds=0.4)
    starts = [r.round_start for r in res]
    first: dict[tuple[int, int], float] = {}
    for when, addr in fake.sent:
        rnd = max(i for i, s in enumerate(starts) if s <= when + 1e-3)
        first.setdefault((block_of(addr), rnd), when - starts[rnd])
    for b in range(30):
        offs = [first[(b, r)] for r in range(3)]
        assert max(offs) - min(offs) < 0.4 / 3  # the same slice every round


def test_offsets_are_a_stable_hash_of_the_block() -> None:
    starts = np.array([BASE, BASE + 256, BASE + 512], dtype=np.uint32)
    a = stable_offsets(starts, seed=7)
    assert a.tolist() == stable_offsets(starts, seed=7).tolist()
    assert a.tolist() != stable_offsets(starts, seed=8).tolist()
    assert ((a >= 0) & (a < 1)).all()


def test_lossy_blocks_claimed_always_available_stay_up() -> None:
    import random

    rng = random.Random(5)
    t = lab_targets(20, availability=1.0)
    res = run_rounds(t, FakeRawSocket(lambda a: "drop" if rng.random() < 0.3 else "reply"), 5)
    states = np.array([r.states for r in res])
    assert (states == BlockState.UP).mean() >= 0.9
    assert (states == BlockState.DOWN).sum() <= 4
    lost = sum(int(r.lost.sum()) for r in res)
    done = sum(int(r.lost.sum() + r.replies.sum()) for r in res)
    assert 0.15 < lost / done < 0.5
