"""The Dask client every distributed command uses: ``local:N`` or a scheduler address.

Why Dask (issue 11, "Choice of engine"): ``dask.distributed`` started a 2-worker
LocalCluster in about 1 s here and its workers are plain processes running our own
functions, so the same task code runs on a laptop's LocalCluster and on a real cluster given
a scheduler address (``tcp://host:8786``). Worker processes are spawned: a script that makes
a ``local:N`` cluster needs an ``if __name__ == "__main__":`` guard (the ``netvigil`` console
script has one).

Three ways to name the cluster (``--scheduler``): ``local:N`` (N worker processes here, for
the command's duration), a scheduler address (``tcp://host:8786``: a cluster someone else
runs), and ``ssh:SCHEDULER,WORKER[,WORKER...]``: Dask's ``SSHCluster`` (asyncssh) starts a
scheduler on the first host and one single-threaded worker (with its nanny) per further
host name over SSH for the command's duration, and stops them after it (a host named twice
runs two workers). The hosts need the same Python at the same path as this process
(``sys.executable``: the same virtual environment on the shared filesystem) and this user's
OpenSSH setup is used as it is: ``~/.ssh/config`` (user, port, identity), keys and
``~/.ssh/known_hosts`` (a host whose key is not known is refused, never trusted on first
use). Why ``SSHCluster`` and not ``dask ssh``: that CLI is Dask's older paramiko cluster,
which accepts any host key (``AutoAddPolicy``); asyncssh is the ``ssh`` extra
(docs/scaling.md section 5; tests/test_distributed_ssh.py runs it against real ``sshd``).
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from netvigil.model.errors import InputError

if TYPE_CHECKING:
    from distributed import Client, Future

#: where a job's progress lines go (the CLI: stderr); None: nowhere
Echo = Callable[[str], None] | None

ENGINES = ("local", "dask")

#: glibc ``mallopt`` parameters (malloc.h) and the values a task runs with: the largest
#: mmap threshold glibc accepts on 64-bit (HEAP_MAX_SIZE / 2), and a trim threshold above it
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
TASK_MALLOC = {M_MMAP_THRESHOLD: 32 << 20, M_TRIM_THRESHOLD: 256 << 20}
_MALLOC_ENV = {M_TRIM_THRESHOLD: "MALLOC_TRIM_THRESHOLD_",
               M_MMAP_THRESHOLD: "MALLOC_MMAP_THRESHOLD_"}
_GLIBC_DEFAULT = 128 * 1024


def _mallopt() -> Callable[[int, int], int] | None:
    """The C library's ``mallopt`` (glibc), or None (another libc, or none to load)."""
    try:
        fn: Callable[[int, int], int] = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None
    return fn


@contextmanager
def roomy_malloc() -> Iterator[None]:
    """Raise glibc's mmap and trim thresholds for one task, then put back the environment's.

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``
    (``distributed.nanny.pre-spawn-environ``, so that workers hand freed memory back), and
    setting any threshold turns off glibc's dynamic mmap threshold (mallopt(3)): every
    allocation above 128 KiB — each numpy temporary of the snapshots and RIB loads — became
    a fresh mmap, page-faulted and zeroed by the kernel, and the heap was given back and
    faulted in again between allocations. Every task that allocates much runs under it
    (BGP epochs, detection shards, OONI chunks, series-import files). Measured in one
    process on an epoch of the scaling benchmark: 2.2 M page faults and 4.8-5.4 s of
    system time per epoch with the variable against 1,500-40,000 and 0.04-0.14 s without
    (the user time 4.6 against 3.9-4.2 s); on the 40,000 OONI measurements of
    ``bench_dask.py`` (``judge_chunk`` on every chunk, fresh spawned process, three
    alternated pairs) 211,643-212,132 faults and 4.91-6.41 s without, 13,379-13,459 and
    3.75-5.65 s with (docs/scaling.md). Two workers faulting at once contend in the kernel.
    Only when such a variable is set (the dynamic threshold is then off anyway); afterwards
    the worker returns memory as Dask configured it (``malloc_trim``)."""
    mallopt = _mallopt() if any(os.environ.get(v) for v in _MALLOC_ENV.values()) else None
    if mallopt is None:
        yield
        return
    for param, value in TASK_MALLOC.items():
        mallopt(param, value)
    try:
        yield
    finally:
        for param, var in _MALLOC_ENV.items():
            text = os.environ.get(var, "")
            mallopt(param, int(text) if text.isdigit() else _GLIBC_DEFAULT)
        trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
        if trim is not None:
            trim(0)


#: ``distributed.deploy.lost-worker-timeout``: 15 s after the scheduler loses a worker,
#: Dask's SpecCluster closes that worker's nanny for good unless a worker of the same name
#: is registered at that instant. The nanny of a local cluster restarts its killed worker
#: itself, so the timer only does harm: a worker killed again just before the first kill's
#: timer fires (a test's second kill 14.6 s after the first) loses its nanny, and the
#: cluster stays one worker short (a CI run failed on it: "Only 1/2 workers arrived").
#: Ten years: the timer never fires while a cluster runs.
LOST_WORKER_TIMEOUT: dict[str, object] = {"distributed.deploy.lost-worker-timeout": "3650d"}

#: Dask configuration of the clusters this module starts: the worker's own periodic work,
#: which costs CPU per *wall* second, not per task, so it grew with a loaded machine's wall
#: time (docs/scaling.md, "Dask's own worker threads": 3-14 % of task CPU). The statistical
#: profiler (``distributed.worker.profile``: a stack sample of every thread every 10 ms,
#: holding the GIL) is off: nobody reads its profiles here (the dashboard is on a random
#: port). The event-loop health tick runs every 200 ms instead of 20 ms (it still warns of
#: a loop blocked for ``admin.tick.limit``, 3 s) and the system monitor (the dashboard's
#: CPU and memory history, host disk I/O) every 2 s instead of 0.5 s; the memory monitor
#: that pauses and spills keeps its 100 ms. An idle worker's event loop, measured
#: (``client.run`` of the thread's CPU clock over 15 s, 2 workers, load 10): Dask's
#: defaults 0.027-0.033 CPU s per wall second, profiler off 0.017-0.020, all three
#: 0.0067-0.0071. A cluster given by address keeps its own workers' configuration: set
#: these where its ``dask worker`` processes start (``DASK_DISTRIBUTED__WORKER__PROFILE__
#: ENABLED=False``, ``DASK_DISTRIBUTED__ADMIN__TICK__INTERVAL=200ms``,
#: ``DASK_DISTRIBUTED__ADMIN__SYSTEM_MONITOR__INTERVAL=2s``): a client cannot change the
#: periodic callbacks of a running worker.
CLUSTER_CONFIG: dict[str, object] = {
    **LOST_WORKER_TIMEOUT,
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "200ms",
    "distributed.admin.system-monitor.interval": "2s",
}


def task_key(name: str) -> str:
    """``name`` made unique to this call: the key of one submitted task.

    Dask treats a submitted key that its scheduler still holds as the same task, even with
    ``pure=False``, and hands back the held result without running anything. A resumed job
    in the same client (its first run's keys not yet released) or a second job on a shared
    scheduler naming its work folder alike would then skip a task whose output file it
    needs; a test saw the first case (a re-run's OONI chunk never written). The readable
    ``name`` stays the key's prefix, for the dashboard and for tests that watch a kind of
    task."""
    return f"{name}-{uuid.uuid4().hex[:12]}"


SSH_PREFIX = "ssh:"
#: seconds for every worker of an ``ssh:`` cluster to register with its scheduler
SSH_START_TIMEOUT = 120.0


@dataclass(frozen=True)
class SshHosts:
    """``ssh:SCHEDULER,WORKER[,WORKER...]``: where ``SSHCluster`` starts the scheduler and
    the workers (one per entry: a host named twice runs two)."""

    scheduler: str
    workers: tuple[str, ...]


def parse_scheduler(text: str) -> int | str | SshHosts:
    """``local:N`` -> N worker processes; ``ssh:S,W1[,W2...]`` -> :class:`SshHosts`;
    anything else is a scheduler address."""
    if text.startswith("local:"):
        try:
            n = int(text.removeprefix("local:"))
        except ValueError:
            n = 0
        if n < 1:
            raise InputError("--scheduler", None, f"{text!r}: local:N needs N >= 1")
        return n
    if text.startswith(SSH_PREFIX):
        hosts = [h.strip() for h in text.removeprefix(SSH_PREFIX).split(",")]
        if len(hosts) < 2 or not all(hosts):
            raise InputError("--scheduler", None,
                             f"{text!r}: ssh:SCHEDULER,WORKER[,WORKER...] needs a scheduler"
                             " host and at least one worker host, comma-separated")
        return SshHosts(hosts[0], tuple(hosts[1:]))
    if "://" not in text and ":" not in text:
        raise InputError("--scheduler", None,
                         f"{text!r}: give local:N, ssh:SCHEDULER,WORKER[,...] or a scheduler"
                         " address (tcp://host:port)")
    return text


@contextmanager
def dask_client(scheduler: str) -> Iterator[Client]:
    """A connected client; a cluster this call starts (``local:N``, ``ssh:...``) is shut
    down on exit, a remote one is only disconnected."""
    import dask
    from distributed import Client, LocalCluster

    target = parse_scheduler(scheduler)
    if isinstance(target, int):
        # the nannies copy the configuration current when they are made into the worker
        # processes they spawn (a replacement for a lost worker included)
        with dask.config.set(CLUSTER_CONFIG), \
                LocalCluster(n_workers=target, threads_per_worker=1, processes=True,  # type: ignore[no-untyped-call]
                             # ":0": any free port (None still binds 8787, and warns when
                             # it is taken: pytest turns that warning into an error)
                             dashboard_address=":0", silence_logs=logging.ERROR) as cluster, \
                Client(cluster) as client:  # type: ignore[no-untyped-call]
            yield client
    elif isinstance(target, SshHosts):
        with dask.config.set(CLUSTER_CONFIG), _ssh_cluster(target) as cluster, \
                Client(cluster) as client:  # type: ignore[no-untyped-call]
            # SSHCluster returns once each remote worker printed its address, which may be
            # before the scheduler registered it: the commands count workers for their
            # default shard and chunk counts (n_workers)
            client.wait_for_workers(len(target.workers), timeout=SSH_START_TIMEOUT)
            yield client
    else:
        with _connect(target) as client:
            yield client


@contextmanager
def _ssh_cluster(hosts: SshHosts) -> Iterator[Any]:
    """``SSHCluster`` on ``hosts`` (module docstring), after every host answered SSH
    (:func:`_check_ssh`), so a failure names its host. ``CLUSTER_CONFIG`` reaches the
    remote processes: SSHCluster passes the current Dask configuration to them."""
    try:
        import asyncssh  # noqa: F401 (SSHCluster imports it late, with a vaguer message)
    except ImportError as exc:
        raise InputError("--scheduler", None, "ssh: needs the asyncssh package: pip install"
                         " 'netvigil[ssh]'") from exc
    from distributed import SSHCluster

    asyncio.run(_check_ssh([hosts.scheduler, *dict.fromkeys(hosts.workers)]))
    # SSHCluster relays every line the remote processes log at INFO (a hint to install
    # jupyter-server-proxy among them) to this process's stderr: warnings and errors only,
    # as a local:N cluster's silence_logs does
    relay = logging.getLogger("distributed.deploy.ssh")
    level = relay.level
    relay.setLevel(logging.WARNING)
    try:
        cluster = SSHCluster(
            [hosts.scheduler, *hosts.workers], connect_options={},
            worker_options={"nthreads": 1}, remote_python=sys.executable,
            scheduler_options={"port": 0, "dashboard_address": ":0"})
        try:
            yield cluster
        finally:
            cluster.close()
    finally:
        relay.setLevel(level)


async def _check_ssh(hosts: Sequence[str]) -> None:
    """Open and close one SSH connection to each host at once (asyncssh, this user's OpenSSH
    configuration). The first failure is an OS error naming its host: refused
    authentication or an unknown host key is a permission error (exit status 6), anything
    else (no route, refused, timed out) exit status 7."""
    import asyncssh

    async def one(host: str) -> None:
        try:
            async with asyncssh.connect(host):
                pass
        except (asyncssh.PermissionDenied, asyncssh.HostKeyNotVerifiable) as exc:
            raise PermissionError(errno.EACCES, f"SSH to {host} refused: {exc}", host) from exc
        except asyncssh.Error as exc:
            raise OSError(errno.ECONNABORTED, f"SSH to {host} failed: {exc}", host) from exc
        except OSError as exc:
            raise OSError(exc.errno or errno.EHOSTUNREACH,
                          f"SSH to {host} failed: {exc.strerror or exc}", host) from exc

    await asyncio.gather(*(one(h) for h in hosts))


def _connect(address: str) -> Client:
    """A client of the scheduler at ``address``. Not reaching it is an OS error naming the
    address (exit status 7, "try again later", at the CLI boundary), not one about the
    store the command was given; Dask retries until ``distributed.comm.timeouts.connect``
    (30 s unless configured, e.g. ``DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=5s``)."""
    from distributed import Client

    try:
        return Client(address)  # type: ignore[no-untyped-call]
    except OSError as exc:  # asyncio/socket timeouts and refusals are OSErrors
        raise OSError(errno.ETIMEDOUT, f"no Dask scheduler answered: {exc}", address) from exc


def n_workers(client: Client) -> int:
    info = client.scheduler_info()
    return max(1, len(info.get("workers", {})))


class _Progress:
    """The done-callback of a job's futures: a line when a task finishes, at most one per
    ``every`` seconds and always the last (a backfill of thousands of chunks stays
    readable)."""

    def __init__(self, what: str, total: int, resumed: int, echo: Callable[[str], None],
                 every: float) -> None:
        self.what, self.total, self.resumed, self.echo, self.every = (
            what, total, resumed, echo, every)
        self.finished = 0
        self.t0 = time.monotonic()
        self.last = -every
        self.lock = threading.Lock()

    def __call__(self, future: Any) -> None:
        if getattr(future, "status", "finished") != "finished":
            return  # failed or cancelled: the command reports the failure itself
        with self.lock:
            self.finished += 1
            now = time.monotonic()
            if self.finished < self.total and now - self.last < self.every:
                return
            self.last = now
            took = now - self.t0
            left = took / self.finished * (self.total - self.finished)
            self.echo(f"{self.what}: {self.finished + self.resumed}/"
                      f"{self.total + self.resumed} finished"
                      + (f" ({self.resumed} resumed)" if self.resumed else "")
                      + f", {took:.0f} s" + (f", about {left:.0f} s left"
                                             if self.finished < self.total else ""))


def report_progress(futures: Sequence[Future[Any]], what: str, echo: Echo, *, resumed: int = 0,
                    every: float = 5.0) -> None:
    """Print ``what: K/N finished, T s, about S s left`` as ``futures`` finish, in whatever
    order (Dask runs a callback per future in a thread of its own: hence the lock). A
    backfill runs for hours; its only other sign of life is the scheduler's dashboard.
    The estimate is the mean time per finished task so far, nothing more."""
    if echo is None or not futures:
        return
    progress = _Progress(what, len(futures), resumed, echo, every)
    for f in futures:
        f.add_done_callback(progress)  # type: ignore[no-untyped-call]
