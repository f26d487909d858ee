"""Kill a Dask worker in the middle of a task (issue 11, deliverable 5), for the
distributed tests: the job runs in a thread while the test polls the scheduler for a worker
processing a task of the job and SIGKILLs that worker's process (the nanny restarts it)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable

from distributed import Client


def kill_a_worker_during(client: Client, job: Callable[[], object], key_prefix: str
                         ) -> tuple[object, list[tuple[str, str]]]:
    """Run ``job``; SIGKILL the first worker seen processing a task whose key starts with
    ``key_prefix``. Returns the job's result and the scheduler's (from, to) state moves of
    the killed tasks (a task lost with its worker goes to ``processing`` again). Waits for
    the nanny's replacement, so the session's cluster has its workers back."""
    pids: dict[str, int] = client.run(os.getpid)
    done: dict[str, object] = {}
    thread = threading.Thread(target=lambda: done.update(result=job()))
    thread.start()
    killed: list[str] = []
    deadline = time.monotonic() + 60
    while not killed and time.monotonic() < deadline:
        for addr, keys in client.processing().items():
            ours = [str(k) for k in keys if str(k).startswith(key_prefix)]
            if ours and addr in pids:
                os.kill(pids[addr], signal.SIGKILL)
                killed = ours
                break
        time.sleep(0.005)
    thread.join(120)
    assert killed, f"no task {key_prefix}* seen running on a worker"
    assert "result" in done, "the job did not finish"
    moves = [(e[2], e[3]) for k in killed for e in client.story(k) if e[0] == "scheduler"]
    client.wait_for_workers(len(pids), timeout=60)
    return done["result"], moves
