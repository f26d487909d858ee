"""One shared raw ICMP socket driven by asyncio: a paced sender and a reader that matches.

Why one socket: every raw ICMP socket receives a copy of every ICMP datagram the host gets,
so N sockets cost N× the parsing; one socket read with ``loop.add_reader`` and drained until
``EAGAIN`` keeps one parse per reply. Requests leave through a token bucket (the global
probes/s limit) from a queue, in bursts of at most a few milliseconds' worth.

Replies are matched by (identifier, sequence): a 32-bit probe counter split into the ICMP
identifier (``ident_base`` + high 16 bits) and sequence (low 16 bits), so up to 2^32
probes are distinguishable — 65,536 sequence numbers alone would wrap within 1.3 s at
50k probes/s, well inside a 3 s timeout. A reply must also come from the address probed.
ICMP destination-unreachable / time-exceeded quoting one of our requests resolves it at
once as a negative (``unreachable``); a probe unanswered after ``timeout`` is a negative
(``lost``).

The engine sends only to ``(block, host)`` positions of its :class:`TargetList`, so it cannot
be asked to probe an address outside the list; :meth:`IcmpEngine.probe_address` checks a
free-form address against the list and raises :class:`TargetRefused` otherwise.
"""

from __future__ import annotations

import asyncio
import errno
import secrets
import socket
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from netvigil.model.errors import NetVigilError
from netvigil.sources.probing import icmp
from netvigil.sources.probing.targets import TargetList

#: outcome codes passed to the result callback
REPLY, LOST, UNREACHABLE = 1, 0, 2

_IDENT_SEQ = struct.Struct("!HH")
_ntoa = socket.inet_ntoa

ResultCallback = Callable[[int, int, float], None]  # (block index, outcome, rtt seconds)


class TargetRefused(NetVigilError):
    """The prober was asked to probe an address that is not in its target list."""


@dataclass
class EngineStats:
    sent: int = 0
    replies: int = 0
    unreachable: int = 0
    lost: int = 0
    send_errors: int = 0
    foreign: int = 0  # ICMP datagrams not matching any pending probe (other pingers)


class IcmpEngine:
    """Send echo requests to target positions at a global rate; report each outcome once."""

    def __init__(self, targets: TargetList, on_result: ResultCallback, *,
                 rate: float = 10_000.0, timeout: float = 3.0,
                 sock: socket.socket | None = None, ident_base: int | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.targets = targets
        self.on_result = on_result
        self.rate = float(rate)
        self.timeout = float(timeout)
        self._own_sock = sock is None
        self.sock = sock if sock is not None else icmp.open_raw_socket()
        self.sock.setblocking(False)
        # Random by default: two probers on one host (each socket sees every reply) must not
        # share identifiers.
        self.ident_base = (secrets.randbits(16) if ident_base is None else ident_base) & 0xFFFF
        self.stats = EngineStats()
        self._counter = 0
        self._queue: deque[tuple[int, int]] = deque()  # (block index, host position)
        self._pending: dict[int, tuple[int, int, float]] = {}  # key -> (block, addr, t_sent)
        self._sent_order: deque[tuple[float, int]] = deque()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        # Columns stay numpy (a Python list would cost ~36 bytes per block); hosts as bytes so
        # that indexing yields an int directly.
        self._starts = targets.block_starts
        self._offsets = targets.offsets
        self._hosts = targets.hosts.tobytes()

    # ------------------------------------------------------------------ life cycle
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.sock.fileno(), self._on_readable)
        self._tasks = [asyncio.create_task(self._sender()), asyncio.create_task(self._reaper())]

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except asyncio.CancelledError:
                pass
        if self._loop is not None:
            self._loop.remove_reader(self.sock.fileno())
        if self._own_sock:
            self.sock.close()

    @property
    def backlog(self) -> int:
        return len(self._queue)

    @property
    def outstanding(self) -> int:
        return len(self._pending)

    # ------------------------------------------------------------------ requests
    def enqueue(self, block: int, host_pos: int) -> None:
        """Queue one probe to the ``host_pos``-th address of E(block) (wraps around)."""
        lo, hi = int(self._offsets[block]), int(self._offsets[block + 1])
        if hi == lo:
            raise TargetRefused(f"block {self.targets.block_cidr(block)} has no addresses")
        self._queue.append((block, lo + host_pos % (hi - lo)))
        self._wake.set()

    def probe_address(self, address: int) -> None:
        """Queue a probe to a literal address, refusing any address not in the list."""
        block = self.targets.block_index(address)
        if block < 0 or not self.targets.contains(address):
            raise TargetRefused(f"{socket.inet_ntoa(address.to_bytes(4, 'big'))} is not in "
                                "the target list; the prober only probes listed addresses")
        lo = int(self._offsets[block])
        pos = self._hosts.index(bytes([address & 0xFF]), lo, int(self._offsets[block + 1])) - lo
        self.enqueue(block, pos)

    async def _sender(self) -> None:
        tick = 0.002
        tokens = 0.0
        burst = max(1.0, self.rate * tick * 4)
        last = time.monotonic()
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                last = time.monotonic()
                tokens = max(tokens, 1.0)
            now = time.monotonic()
            tokens = min(burst, tokens + (now - last) * self.rate)
            last = now
            while tokens >= 1.0 and self._queue:
                block, hpos = self._queue[0]
                if not self._transmit(block, hpos):
                    break  # socket buffer full: retry next tick
                self._queue.popleft()
                tokens -= 1.0
            await asyncio.sleep(tick)

    def _transmit(self, block: int, hpos: int) -> bool:
        addr = int(self._starts[block]) + self._hosts[hpos]
        n = self._counter
        self._counter = (n + 1) & 0xFFFFFFFF
        ident = (self.ident_base + (n >> 16)) & 0xFFFF
        seq = n & 0xFFFF
        packet = icmp.echo_request(ident, seq)
        now = time.monotonic()
        try:
            self.sock.sendto(packet, (_ntoa(addr.to_bytes(4, "big")), 0))
        except BlockingIOError:
            self._counter = n
            return False
        except OSError as exc:
            # A local verdict (no route, prohibited, unreachable): no packet left, but it is
            # an answer about reachability, so it resolves the probe as unreachable.
            self.stats.send_errors += 1
            self.stats.sent += 1
            code = UNREACHABLE if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH,
                                                errno.EACCES, errno.EPERM) else LOST
            self._count(code)
            self.on_result(block, code, 0.0)
            return True
        key = (ident << 16) | seq
        self._pending[key] = (block, addr, now)
        self._sent_order.append((now, key))
        self.stats.sent += 1
        return True

    # ------------------------------------------------------------------ replies
    def _on_readable(self) -> None:
        recv = self.sock.recv
        pending = self._pending
        unpack = _IDENT_SEQ.unpack_from
        on_result = self.on_result
        stats = self.stats
        while True:
            try:
                data = recv(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # pragma: no cover - e.g. ICMP error queued on the socket
                continue
            if len(data) < 28 or data[0] >> 4 != 4:
                continue
            ihl = (data[0] & 0x0F) * 4
            if data[ihl] == icmp.ECHO_REPLY and len(data) >= ihl + 8:
                # Fast path for the common case: an echo reply, matched without a dataclass.
                ident, seq = unpack(data, ihl + 4)
                key = (ident << 16) | seq
                entry = pending.get(key)
                if entry is None or entry[1] != int.from_bytes(data[12:16], "big"):
                    stats.foreign += 1
                    continue
                del pending[key]
                stats.replies += 1
                on_result(entry[0], REPLY, time.monotonic() - entry[2])
                continue
            msg = icmp.parse(data)
            if msg is None:
                continue
            key = (msg.ident << 16) | msg.seq
            entry = pending.get(key)
            if entry is None or entry[1] != msg.address:
                stats.foreign += 1
                continue
            del pending[key]
            self._count(UNREACHABLE)
            on_result(entry[0], UNREACHABLE, time.monotonic() - entry[2])

    def _count(self, code: int) -> None:
        if code == REPLY:
            self.stats.replies += 1
        elif code == UNREACHABLE:
            self.stats.unreachable += 1
        else:
            self.stats.lost += 1

    async def _reaper(self) -> None:
        period = min(0.05, self.timeout / 10)
        while True:
            await asyncio.sleep(period)
            self.expire(time.monotonic())

    def expire(self, now: float) -> int:
        """Resolve every probe sent at least ``timeout`` ago as lost; returns how many."""
        n = 0
        order = self._sent_order
        deadline = now - self.timeout
        while order and order[0][0] <= deadline:
            _, key = order.popleft()
            entry = self._pending.pop(key, None)
            if entry is not None:
                n += 1
                self._count(LOST)
                self.on_result(entry[0], LOST, 0.0)
        return n
