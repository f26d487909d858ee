"""A throw-away Linux lab of /24 blocks in network namespaces, for tests and benchmarks.

Topology (all names carry a per-lab tag; nothing is created in the caller's namespace)::

    [vantage ns]  vp0 198.19.0.1/30 ── rt0 198.19.0.2/30  [router ns]
                                         b<k> 198.19.<k>.1/30 ── ul 198.19.<k>.2/30  [block ns k]
                                                                  lo: 198.18.<k>.1 … .<hosts>

Blocks live in 198.18.0.0/15, the range RFC 2544 reserves for benchmarking, and the vantage
namespace routes only that range, so a mistaken probe cannot leave the lab. The router is
where faults are injected: ``blackhole`` (silent drop), ``prohibit`` / ``reject_icmp`` (ICMP
administratively prohibited, type 3 code 13), ``link down`` of a block's veth, and random
loss (``tc netem``, or an nftables ``numgen`` rule where the kernel lacks netem).

Requires root (``ip netns``); :func:`can_build` says whether this process may.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import socket
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from netvigil.sources.probing import icmp

CLONE_NEWNET = 0x40000000
BLOCK_NET = (198 << 24) | (18 << 16)


def can_build() -> tuple[bool, str]:
    """(True, "") if namespaces can be built here, else (False, reason)."""
    if os.geteuid() != 0:
        return False, "building network namespaces needs root (ip netns); run as root"
    try:
        subprocess.run(["ip", "netns", "list"], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        return False, f"`ip netns` is unusable here: {exc}"
    return True, ""


def _ip(*args: str, ns: str | None = None) -> None:
    cmd = ["ip", *(["-n", ns] if ns else []), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")


def _in_ns(ns: str, *cmd: str) -> None:
    try:
        proc = subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True)
    except OSError as exc:
        raise RuntimeError(f"{cmd[0]}: {exc}") from exc
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} in {ns} failed: {proc.stderr.strip()}")


@dataclass
class Lab:
    """A vantage namespace, a router and one namespace per block; use as a context manager."""

    n_blocks: int
    hosts: int = 20
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    namespaces: list[str] = field(default_factory=list)
    _nft_ready: bool = False
    _sockets: list[socket.socket] = field(default_factory=list)

    @property
    def vantage(self) -> str:
        return f"nvp{self.tag}vp"

    @property
    def router(self) -> str:
        return f"nvp{self.tag}rt"

    def block_ns(self, k: int) -> str:
        return f"nvp{self.tag}b{k}"

    @staticmethod
    def block_start(k: int) -> int:
        return BLOCK_NET + (k << 8)

    def block_cidr(self, k: int) -> str:
        return f"198.18.{k}.0/24"

    def addresses(self, k: int) -> list[int]:
        return [self.block_start(k) + h for h in range(1, self.hosts + 1)]

    # ------------------------------------------------------------------ build / tear down
    def __enter__(self) -> Lab:
        try:
            self.build()
        except BaseException:
            self.destroy()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    def _add_ns(self, name: str) -> None:
        _ip("netns", "add", name)
        self.namespaces.append(name)
        _ip("link", "set", "lo", "up", ns=name)

    def build(self) -> None:
        if not 1 <= self.n_blocks <= 254 or not 1 <= self.hosts <= 254:
            raise ValueError("1..254 blocks of 1..254 hosts")
        vp, rt = self.vantage, self.router
        self._add_ns(vp)
        self._add_ns(rt)
        _ip("link", "add", "vp0", "type", "veth", "peer", "name", "rt0", "netns", rt, ns=vp)
        _ip("addr", "add", "198.19.0.1/30", "dev", "vp0", ns=vp)
        _ip("link", "set", "vp0", "up", ns=vp)
        _ip("route", "add", "198.18.0.0/16", "via", "198.19.0.2", ns=vp)
        _ip("addr", "add", "198.19.0.2/30", "dev", "rt0", ns=rt)
        _ip("link", "set", "rt0", "up", ns=rt)
        for key, value in (("net.ipv4.ip_forward", "1"), ("net.ipv4.icmp_ratelimit", "0"),
                           ("net.ipv4.icmp_msgs_per_sec", "100000"),
                           ("net.ipv4.conf.all.rp_filter", "0")):
            _in_ns(rt, "sysctl", "-qw", f"{key}={value}")
        for k in range(1, self.n_blocks + 1):
            self._add_block(k)

    def _add_block(self, k: int) -> None:
        rt, bn = self.router, self.block_ns(k)
        self._add_ns(bn)
        _ip("link", "add", f"b{k}", "type", "veth", "peer", "name", "ul", "netns", bn, ns=rt)
        _ip("addr", "add", f"198.19.{k}.1/30", "dev", f"b{k}", ns=rt)
        _ip("link", "set", f"b{k}", "up", ns=rt)
        _ip("route", "add", self.block_cidr(k), "via", f"198.19.{k}.2", ns=rt)
        _ip("addr", "add", f"198.19.{k}.2/30", "dev", "ul", ns=bn)
        _ip("link", "set", "dev", "ul", "up", ns=bn)
        _ip("route", "add", "default", "via", f"198.19.{k}.1", ns=bn)
        _in_ns(bn, "sysctl", "-qw", "net.ipv4.icmp_msgs_per_sec=100000")
        for h in range(1, self.hosts + 1):
            _ip("addr", "add", f"198.18.{k}.{h}/32", "dev", "lo", ns=bn)

    def answer_all(self, k: int) -> None:
        """Make every address of block k answer (a ``local`` route for the whole /24)."""
        _ip("route", "add", "local", self.block_cidr(k), "dev", "lo", ns=self.block_ns(k))

    def destroy(self) -> None:
        """Close the lab's sockets, delete every namespace it made (veths go with them)."""
        while self._sockets:
            self._sockets.pop().close()
        while self.namespaces:
            name = self.namespaces.pop()
            subprocess.run(["ip", "netns", "del", name], capture_output=True)

    # ------------------------------------------------------------------ faults
    def blackhole(self, k: int) -> None:
        _ip("route", "replace", "blackhole", self.block_cidr(k), ns=self.router)

    def prohibit(self, k: int) -> None:
        _ip("route", "replace", "prohibit", self.block_cidr(k), ns=self.router)

    def restore(self, k: int) -> None:
        _ip("route", "replace", self.block_cidr(k), "via", f"198.19.{k}.2", ns=self.router)
        bn = self.block_ns(k)
        _ip("link", "set", "dev", "ul", "up", ns=bn)
        # A link taken down loses its routes; put the default route back.
        _ip("route", "replace", "default", "via", f"198.19.{k}.1", ns=bn)

    def link_down(self, k: int) -> None:
        _ip("link", "set", "dev", "ul", "down", ns=self.block_ns(k))

    def lossy(self, k: int, percent: int, *, evenly: bool = False) -> str:
        """Drop ``percent`` % of requests to block k at random; returns the mechanism used.

        ``tc netem`` where the kernel has it, else an nftables ``numgen random`` drop rule in
        the router's forward hook (some VM kernels ship without ``sch_netem``). With
        ``evenly``, every (100 / percent)-th request instead (nftables ``numgen inc``): the
        same rate without bursts, for a test whose claim is about a steady loss rate (at 20 %
        random loss, five losses in a row, enough to turn a Trinocular block's belief down,
        come once in about 3,000 rounds, more often with late replies on a loaded machine).
        """
        if evenly:
            if percent <= 0 or 100 % percent:
                raise ValueError(f"evenly: {percent} % is not one request in N")
            self._nft(f"add rule inet nvlab filt ip daddr {self.block_cidr(k)} "
                      f"numgen inc mod {100 // percent} == 0 drop")
            return "nft"
        try:
            _in_ns(self.router, "tc", "qdisc", "replace", "dev", f"b{k}", "root", "netem",
                   "loss", f"{percent}%")
            return "netem"
        except RuntimeError:
            pass
        self._nft(f"add rule inet nvlab filt ip daddr {self.block_cidr(k)} "
                  f"numgen random mod 100 < {percent} drop")
        return "nft"

    def reject_icmp(self, k: int) -> str:
        """Answer echo requests to block k with ICMP admin-prohibited (type 3 code 13)."""
        try:
            self._nft(f"add rule inet nvlab filt ip daddr {self.block_cidr(k)} "
                      "icmp type echo-request reject with icmp type admin-prohibited")
            return "nft"
        except (RuntimeError, OSError):
            self.prohibit(k)
            return "route"

    def _nft(self, rule: str) -> None:
        if not self._nft_ready:
            _in_ns(self.router, "nft", "add table inet nvlab")
            _in_ns(self.router, "nft",
                   "add chain inet nvlab filt { type filter hook forward priority 0 ; }")
            self._nft_ready = True
        _in_ns(self.router, "nft", rule)

    # ------------------------------------------------------------------ probing from inside
    def raw_socket(self) -> socket.socket:
        """A raw ICMP socket living in the vantage namespace (the caller's stays unchanged).

        ``setns`` moves only the calling thread, so a short-lived thread enters the
        namespace, opens the socket, and exits; the socket stays bound to that namespace.
        """
        box: list[socket.socket | BaseException] = []

        def work() -> None:
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                fd = os.open(f"/var/run/netns/{self.vantage}", os.O_RDONLY)
                try:
                    if libc.setns(fd, CLONE_NEWNET) != 0:
                        err = ctypes.get_errno()
                        raise OSError(err, f"setns: {os.strerror(err)}")
                finally:
                    os.close(fd)
                box.append(icmp.open_raw_socket())
            except BaseException as exc:  # handed to the caller's thread
                box.append(exc)

        t = threading.Thread(target=work)
        t.start()
        t.join()
        got = box[0]
        if isinstance(got, BaseException):
            raise got
        self._sockets.append(got)  # closed by destroy()
        return got

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        """Prefix a command so it runs in the vantage namespace."""
        return ["ip", "netns", "exec", self.vantage, *argv]

    def targets_csv(self, path: str | Path, availability: float = 0.8,
                    entities: dict[int, str] | None = None) -> Path:
        """Write a ``block,addresses,availability[,entity]`` file for the lab's blocks."""
        p = Path(path)
        ents = entities or {}
        lines = ["block,addresses,availability,entity"]
        for k in range(1, self.n_blocks + 1):
            addrs = " ".join(f"198.18.{k}.{h}" for h in range(1, self.hosts + 1))
            lines.append(f"{self.block_cidr(k)},{addrs},{availability},{ents.get(k, '')}")
        p.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return p
