"""Several "hosts" on one kernel for distributed tests: network namespaces on a private
switch, a ``dask scheduler`` in one, a ``dask worker`` in each of the others, a driver
namespace for the ``netvigil`` commands (issue 11: a scheduler address other than a
LocalCluster's, over TCP between hosts).

Topology (names carry a per-run tag; nothing is added to the caller's namespace)::

    [<tag>-sw] bridge br0 ── veth ── [<tag>-sched] eth0 10.77.0.1/24  dask scheduler :8786
                         ├── veth ── [<tag>-w1]    eth0 10.77.0.11/24 dask worker (own dir)
                         ├── veth ── [<tag>-w2]    eth0 10.77.0.12/24 dask worker (own dir)
                         └── veth ── [<tag>-drv]   eth0 10.77.0.100/24 netvigil (the driver)

Every namespace has only its own ``lo`` and ``eth0``: no route leaves the switch, so nothing
here can reach another address. What it is not: separate machines. The hosts share one
kernel, one filesystem (which stands for the shared filesystem docs/scaling.md section 5
requires: the inputs and the store's folder, at the same path everywhere) and one Python
environment. Each worker has its own working directory and its own ``--local-directory``
(scratch), and is started with ``--no-nanny`` so that a SIGKILL of the host's processes
(:meth:`Hosts.kill_host`) leaves nothing to restart it: the host is gone, as a crashed
machine would be, except that the kernel still closes its TCP connections (a real crash is
noticed by the scheduler's heartbeat timeout instead).

Teardown (:meth:`Hosts.close`) kills every process left in every namespace and deletes the
namespaces, whatever happened (a run killed before it are removed by the next one:
:func:`reap_stale`); ``python tests/dask_hosts.py watch ADDRESS PREFIX`` is the
watcher a test runs in the driver namespace to see which worker holds a task.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

SUBNET = "10.77.0"
PORT = 8786
VENV_BIN = Path(sys.executable).parent
SSHD = "/usr/sbin/sshd"  # Debian's openssh-server
#: seconds to wait for the scheduler and every worker to register
START_TIMEOUT = 60.0


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {proc.stderr.strip()}")


def ns_pids(ns: str) -> list[int]:
    """Processes living in namespace ``ns`` (``ip netns pids``)."""
    proc = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
    return [int(p) for p in proc.stdout.split()] if proc.returncode == 0 else []


@dataclass
class Hosts:
    """A scheduler, ``workers`` worker hosts and a driver host (module docstring)."""

    base: Path  # per-host folders go here (the shared filesystem is the caller's)
    workers: int = 2
    #: ``nvh<pid>x<random>``: the pid lets a later run remove what a killed run left
    tag: str = field(default_factory=lambda: f"nvh{os.getpid()}x{secrets.token_hex(2)}")
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    #: added to the environment of every Dask process (e.g. the scheduler's worker TTL)
    env: dict[str, str] = field(default_factory=dict)
    _made: list[str] = field(default_factory=list)

    # -------------------------------------------------------------- names and addresses
    def ns(self, host: str) -> str:
        return f"{self.tag}-{host}"

    @property
    def worker_hosts(self) -> list[str]:
        return [f"w{i + 1}" for i in range(self.workers)]

    def address(self, host: str) -> str:
        last = {"sched": 1, "drv": 100}.get(host)
        return f"{SUBNET}.{last if last is not None else 10 + int(host[1:])}"

    @property
    def scheduler(self) -> str:
        return f"tcp://{self.address('sched')}:{PORT}"

    def log(self, host: str) -> Path:
        return self.base / f"{host}.log"

    # -------------------------------------------------------------- build and start
    def build(self, default_route: bool = False) -> None:
        """The switch and one namespace per host, linked by veth pairs (after removing the
        namespaces of runs whose process is gone: :func:`reap_stale`). ``default_route``:
        each host also gets a default route onto the switch, as a real machine has one, so
        that a process asking which of its addresses faces the world (Dask's ``get_ip``: a
        UDP ``connect``, which sends nothing) gets ``eth0``'s, not 127.0.0.1; the switch has
        no way out, so nothing sent along it leaves."""
        reap_stale()
        sw = self.ns("sw")
        self._add(sw)
        _ip("-n", sw, "link", "add", "br0", "type", "bridge")
        _ip("-n", sw, "link", "set", "br0", "up")
        for k, host in enumerate(["sched", *self.worker_hosts, "drv"]):
            ns = self.ns(host)
            self._add(ns)
            # both ends are made in the switch namespace, then one is moved to the host
            _ip("-n", sw, "link", "add", f"p{k}", "type", "veth", "peer", "name", "eth0",
                "netns", ns)
            _ip("-n", sw, "link", "set", f"p{k}", "master", "br0", "up")
            _ip("-n", ns, "addr", "add", f"{self.address(host)}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            if default_route:
                _ip("-n", ns, "route", "add", "default", "dev", "eth0")

    def _add(self, ns: str) -> None:
        _ip("netns", "add", ns)
        self._made.append(ns)

    def _spawn(self, host: str, argv: Sequence[str], cwd: Path) -> None:
        cwd.mkdir(parents=True, exist_ok=True)
        with self.log(host).open("wb") as log:
            self.procs[host] = subprocess.Popen(
                ["ip", "netns", "exec", self.ns(host), *argv], cwd=cwd, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **self.env})

    def start(self, wait: bool = True) -> None:
        """``dask scheduler`` on sched, ``dask worker --nthreads 1`` on each worker host
        (own working directory and scratch); with ``wait``, until all are registered
        (else call :meth:`wait_for_workers` before the first job: the processes start
        while the caller does other work)."""
        dask = str(VENV_BIN / "dask")
        self._spawn("sched", [dask, "scheduler", "--host", self.address("sched"), "--port",
                              str(PORT), "--no-dashboard"], self.base / "sched")
        for host in self.worker_hosts:
            home = self.base / host
            self._spawn(host, [dask, "worker", self.scheduler, "--nthreads", "1",
                               "--no-nanny", "--host", self.address(host), "--name", host,
                               "--no-dashboard", "--local-directory", str(home / "scratch"),
                               "--death-timeout", "60"], home)
        if wait:
            self.wait_for_workers(self.workers)

    def start_sshd(self, host: str, config: Path) -> None:
        """OpenSSH's ``sshd`` (foreground, log on stderr) in the host's namespace with
        ``config``, until it says it listens (:data:`START_TIMEOUT`). ``sshd`` needs its
        privilege-separation directory, which a machine that never ran the service lacks."""
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self._spawn(host, [SSHD, "-D", "-e", "-f", str(config)], self.base / host)
        deadline = time.monotonic() + START_TIMEOUT
        while "Server listening on" not in self.log(host).read_text(errors="replace"):
            if self.procs[host].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sshd on {host} did not start\n{self.logs()}")
            time.sleep(0.05)

    def wait_for_workers(self, n: int) -> None:
        """Until ``n`` worker logs say ``Registered to:`` (the line ``dask worker`` prints
        once the scheduler accepted it; docs.dask.org, "Command Line"), a process exits,
        or :data:`START_TIMEOUT`."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            dead = [h for h, p in self.procs.items() if p.poll() is not None]
            if dead:
                raise RuntimeError(f"{dead} exited while starting\n{self.logs()}")
            done = [h for h in self.worker_hosts if self.log(h).is_file()
                    and "Registered to:" in self.log(h).read_text(errors="replace")]
            if len(done) >= n:
                return
            time.sleep(0.1)
        raise RuntimeError(f"workers not registered in {START_TIMEOUT} s\n{self.logs()}")

    # -------------------------------------------------------------- the driver
    def driver_argv(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.ns("drv"), *argv]

    def netvigil(self, argv: Sequence[str], cwd: Path, timeout: float = 180.0,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """``netvigil ARGV`` in the driver namespace, from ``cwd`` (``env``: added to this
        process's environment)."""
        return subprocess.run(self.driver_argv([str(VENV_BIN / "netvigil"), *argv]),
                              cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **(env or {})})

    # -------------------------------------------------------------- faults and teardown
    def kill_host(self, host: str) -> list[int]:
        """SIGKILL every process of the host's namespace (the worker, and its children)."""
        pids = ns_pids(self.ns(host))
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return pids

    def cut_off(self, host: str) -> None:
        """Take the host's only link down: its processes keep running, but nothing they
        send leaves and the other hosts get no FIN, no RST, only silence (a network
        partition, or a machine that lost power), which the scheduler notices only by the
        missing heartbeats (``distributed.scheduler.worker-ttl``)."""
        _ip("-n", self.ns(host), "link", "set", "eth0", "down")

    def logs(self) -> str:
        return "\n".join(f"--- {h}\n{self.log(h).read_text(errors='replace')[-1500:]}"
                         for h in self.procs if self.log(h).is_file())

    def close(self) -> None:
        """Kill what runs in every namespace, reap the started processes, delete the
        namespaces (each step tolerant of what is already gone)."""
        for ns in reversed(self._made):
            for pid in ns_pids(ns):
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for proc in self.procs.values():
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        for ns in reversed(self._made):
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True)
        self._made.clear()


def reap_stale() -> list[str]:
    """Delete the namespaces (and kill their processes) of runs whose pytest process no
    longer exists: a run killed before its teardown leaves them; a live run's are kept."""
    proc = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    gone = []
    for line in proc.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.fullmatch(r"nvh(\d+)x[0-9a-f]+-\w+", name)
        if m is None or Path(f"/proc/{m.group(1)}").exists():
            continue
        for pid in ns_pids(name):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)
        gone.append(name)
    return gone


@contextmanager
def dask_hosts(base: Path, workers: int = 2, wait: bool = True,
               env: dict[str, str] | None = None) -> Iterator[Hosts]:
    """Built and started hosts (registered, with ``wait``); always torn down."""
    hosts = Hosts(base, workers, env=dict(env or {}))
    try:
        hosts.build()
        hosts.start(wait)
        yield hosts
    finally:
        hosts.close()


def can_build() -> tuple[bool, str]:
    """(True, "") if this process may build namespaces and the dask CLI is installed."""
    if os.geteuid() != 0:
        return False, "network namespaces need root (ip netns); run as root"
    if subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
        return False, "`ip netns` is unusable here"
    if not (VENV_BIN / "dask").is_file():
        return False, f"no dask CLI in {VENV_BIN} (pip install 'dask[distributed]')"
    return True, ""


def _watch(address: str, prefix: str, timeout: float = 120.0) -> None:
    """Print (one JSON line) the first worker seen processing a task whose key starts with
    ``prefix``, with those keys; then, on a line from stdin, print the scheduler's
    transitions of those keys (start, finish) as one JSON line."""
    from distributed import Client

    with Client(address, timeout=30) as client:  # type: ignore[no-untyped-call]
        print(json.dumps({"ready": True}), flush=True)
        deadline = time.monotonic() + timeout
        hit: tuple[str, list[str]] | None = None
        while hit is None and time.monotonic() < deadline:
            for addr, keys in client.processing().items():
                mine = [str(k) for k in keys if str(k).startswith(prefix)]
                if mine:
                    hit = (addr, mine)
                    break
            time.sleep(0.005)
        print(json.dumps({"worker": hit[0] if hit else None,
                          "keys": hit[1] if hit else []}), flush=True)
        sys.stdin.readline()
        story = {k: [[e[2], e[3]] for e in client.story(k) if e[0] == "scheduler"]
                 for k in (hit[1] if hit else [])}
        print(json.dumps(story), flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "watch":
        _watch(sys.argv[2], sys.argv[3])
    else:
        sys.exit("usage: dask_hosts.py watch SCHEDULER_ADDRESS KEY_PREFIX")
