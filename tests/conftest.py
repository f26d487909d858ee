"""Suite-wide hooks: prerequisites fail in CI instead of skipping (see tests/prereq.py)."""

from __future__ import annotations

import fcntl
import os
import pickle
import shutil

import pytest

from prereq import MARKER, check_markers

pytest_plugins = ["pytester"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(condition, why): skip locally, fail in CI when condition is false"
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    check_markers(item)


@pytest.fixture(scope="session")
def demo_built(tmp_path_factory: pytest.TempPathFactory) -> object:
    """``(store path, DemoResult)`` of one ``run_demo`` (the Kazakhstan 2022 reconstruction
    through the one pipeline and detection), shared by the demo's own checks and every
    surface test (serve API, IODA subset, alerts, reports).

    Built once per suite run, not once per xdist worker: the first worker to ask builds it
    under an exclusive lock in the folder the workers' temporary folders share, and leaves
    the result pickled beside the store; the others wait on the lock and read it (a second
    build cost about 29 s of CPU). Tests open the store read-only or copy it.
    """
    from netvigil.reports.demo import run_demo
    from netvigil.store.duck import Store

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # every worker's basetemp is in one folder
        root = root.parent
    base = root / "demo_store_shared"
    done = base / "result.pickle"
    with open(root / "demo_store.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not done.exists():
            shutil.rmtree(base, ignore_errors=True)  # a build interrupted before its pickle
            base.mkdir()
            with Store(base / "demo.duckdb") as store:
                result = run_demo(store, base / "report")
            tmp = done.with_suffix(".tmp")
            tmp.write_bytes(pickle.dumps(result))
            tmp.rename(done)
        result = pickle.loads(done.read_bytes())
    return base / "demo.duckdb", result


@pytest.fixture(scope="session")
def demo_store(demo_built: tuple[object, object]) -> object:
    """The demo's store (see ``demo_built``): a Path; open it read-only or copy it."""
    return demo_built[0]


@pytest.fixture(scope="session")
def demo_result(demo_built: tuple[object, object]) -> object:
    """What ``run_demo`` returned for the demo store (``netvigil.reports.demo.DemoResult``)."""
    return demo_built[1]


@pytest.fixture(scope="session")
def dask_client() -> object:
    """One 2-worker LocalCluster (processes, one thread each, any free dashboard port) for
    every distributed test module of the session, instead of one per module: each start
    costs 1.6-1.9 s here. A test that kills a worker waits for the nanny's replacement
    (``client.wait_for_workers(2)``) before it returns, so the next module finds 2."""
    import dask
    from distributed import Client, LocalCluster

    from netvigil.distributed.engine import LOST_WORKER_TIMEOUT

    # Dask's other defaults stay (a test compares them with engine.CLUSTER_CONFIG's); the
    # lost-worker timer would close the nanny of a worker killed twice 15 s apart
    with dask.config.set(LOST_WORKER_TIMEOUT), \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                         dashboard_address=":0") as cluster, Client(cluster) as client:
        yield client
