"""The Dask client every distributed command uses: ``local:N`` or a scheduler address.

Why Dask (issue 11, "Choice of engine"): ``dask.distributed`` started a 2-worker
LocalCluster in about 1 s here and its workers are plain processes running our own
functions, so the same task code runs on a laptop's LocalCluster and on a real cluster given
a scheduler address (``tcp://host:8786``). Worker processes are spawned: a script that makes
a ``local:N`` cluster needs an ``if __name__ == "__main__":`` guard (the ``netvigil`` console
script has one).
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from netvigil.model.errors import InputError

if TYPE_CHECKING:
    from distributed import Client

ENGINES = ("local", "dask")
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
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "200ms",
    "distributed.admin.system-monitor.interval": "2s",
}


def parse_scheduler(text: str) -> int | str:
    """``local:N`` -> N worker processes; anything else is a scheduler address."""
    if text.startswith("local:"):
        try:
            n = int(text.removeprefix("local:"))
        except ValueError:
            n = 0
        if n < 1:
            raise InputError("--scheduler", None, f"{text!r}: local:N needs N >= 1")
        return n
    if "://" not in text and ":" not in text:
        raise InputError("--scheduler", None,
                         f"{text!r}: give local:N or a scheduler address (tcp://host:port)")
    return text


@contextmanager
def dask_client(scheduler: str) -> Iterator[Client]:
    """A connected client; a local cluster is shut down on exit, a remote one is only
    disconnected."""
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
    else:
        with _connect(target) as client:
            yield client


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
