"""The distributed commands against a scheduler on another "host": network namespaces on
one kernel (tests/dask_hosts.py) — a ``dask scheduler``, two ``dask worker`` hosts each with
its own working directory and scratch, and a driver host running the real ``netvigil`` CLI
with ``--scheduler tcp://10.77.0.1:8786``, every byte between them over TCP through a
switch. Inputs and stores are given as paths relative to the driver's working directory
(a worker's is another), in one folder every host sees at the same path (the shared
filesystem docs/scaling.md section 5 requires).

Checked: ``bgp ingest``, ``ooni import`` and ``detect`` with ``--engine dask`` leave the
store one process leaves (points, series, entities, the imports row, alerts, events,
detector states); a worker host whose processes are SIGKILLed, or whose link goes down (a
partition: silence, no closed connection), while it runs a BGP epoch changes nothing in
the result (the scheduler saw the epoch start twice)."""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dask_hosts import Hosts, can_build, dask_hosts
from netvigil.cli.main import cli
from netvigil.store.duck import Store
from prereq import require
from test_ooni_import import BLOCK, HOURS, bucket, telegram

HERE = Path(__file__).parent
MRT = HERE / "fixtures" / "mrt"
OONI = HERE / "fixtures" / "ooni"
QUERIES = {
    "points": "SELECT entity_type, entity_code, signal, time, value FROM points ORDER BY ALL",
    "series": "SELECT * FROM series ORDER BY ALL",
    "entities": "SELECT * FROM entities ORDER BY ALL",
    "imports": "SELECT * EXCLUDE (id, imported_at) FROM imports ORDER BY ALL",
    "alerts": "SELECT * FROM alerts ORDER BY ALL",
    "events": "SELECT * EXCLUDE (rules), list_sort(rules) FROM events ORDER BY ALL",
    "detector_state": "SELECT * FROM detector_state ORDER BY ALL",
}
BGP_TABLES = ("points", "series")
#: the commands, with paths relative to the shared folder (the driver's working directory)
BGP = ["bgp", "ingest", "mrt/updates.20020722.2238.gz", "mrt/bview.20020722.2337.first4000.gz",
       "--collector", "rrc00", "--ff-v4", "1", "--ff-v6", "1"]
#: the whole RIB (115,521 routes): an epoch long enough to kill its worker in the middle
BGP_FULL = [*BGP[:3], "mrt/bview.20020722.2337.gz", *BGP[4:]]
OONI_IMPORT = ["ooni", "import", "--dir", "bucket", "ooni/whatsapp.json", "ooni/tor.json",
               "ooni/signal_022.json", "ooni/web_connectivity_null.json",
               "ooni/report1.json", "--chunk-files", "2"]
DETECT = ["detect", "--shards", "2"]
T0 = 1_641_081_600  # 2022-01-02 00:00 UTC
STEP = 600
#: entity -> (level, parent, outage start in days or None): the input detection judges
SERIES = {("country", "KZ"): (900.0, "", 6.3), ("asn", "9198"): (400.0, "KZ", 6.3),
          ("country", "EG"): (700.0, "", 6.8), ("country", "UZ"): (500.0, "", None)}


@contextmanager
def _cwd(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _series_csv(path: Path, days: int = 8) -> None:
    """A daily cycle with noise per entity; a 6-hour outage at 5 % of the level."""
    per_day = 86_400 // STEP
    lines = ["time,entity_type,entity_code,signal,value,parent"]
    for i, ((etype, code), (level, parent, outage)) in enumerate(SERIES.items()):
        rng = np.random.default_rng(i)
        k = np.arange(days * per_day)
        v = level * (1 + 0.1 * np.sin(2 * np.pi * k / per_day)) + rng.normal(0, level / 100,
                                                                             k.size)
        if outage is not None:
            lo = int(outage * per_day)
            v[lo:lo + 36] = level * 0.05
        lines += [f"{T0 + STEP * j},{etype},{code},probing,{round(x)},{parent}"
                  for j, x in zip(k.tolist(), v.tolist(), strict=True)]
    path.write_text("\n".join(lines) + "\n")


def _tables(path: Path, names: tuple[str, ...] = tuple(QUERIES)
            ) -> dict[str, list[tuple[object, ...]]]:
    with Store(path, read_only=True) as store:
        return {k: store.connection.execute(QUERIES[k]).fetchall() for k in names}


def _invoke(args: list[str]) -> None:
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared folder: inputs, and a base store holding the imported series (the one
    input of every run below)."""
    root = tmp_path_factory.mktemp("shared")
    (root / "mrt").mkdir()
    for name in ("updates.20020722.2238.gz", "bview.20020722.2337.first4000.gz",
                 "bview.20020722.2337.gz"):
        (root / "mrt" / name).symlink_to(MRT / name)
    (root / "ooni").symlink_to(OONI)
    bucket(root / "bucket", [telegram(h, asn, asn == 9198 and h in BLOCK, k)
                             for h in HOURS for asn in (9198, 29355) for k in range(2)])
    _series_csv(root / "series.csv")
    _invoke(["series", "import", str(root / "series.csv"), "--store",
             str(root / "base.duckdb")])
    return root


@pytest.fixture(scope="module")
def reference(shared: Path) -> dict[str, Path]:
    """The one-process stores, from the same working directory and relative paths: after
    ingest (the whole RIB), and after ingest (first 4000 RIB entries), import and
    detection."""
    shutil.copy(shared / "base.duckdb", shared / "one.duckdb")
    shutil.copy(shared / "base.duckdb", shared / "one-bgp.duckdb")
    with _cwd(shared):
        _invoke([*BGP_FULL, "--store", "one-bgp.duckdb"])
        _invoke([*BGP, "--store", "one.duckdb"])
        _invoke([*OONI_IMPORT, "--store", "one.duckdb"])
        _invoke(["detect", "--store", "one.duckdb"])
    return {"bgp": shared / "one-bgp.duckdb", "all": shared / "one.duckdb"}


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    """The hosts, started but not waited for: their Dask processes start while the
    one-process reference runs."""
    ok, why = can_build()
    require(ok, why)
    with dask_hosts(tmp_path_factory.mktemp("hosts"), wait=False) as h:
        yield h


@pytest.fixture(scope="module")
def hosts(started: Hosts, reference: dict[str, Path]) -> Hosts:
    started.wait_for_workers(started.workers)
    return started


def _on_driver(hosts: Hosts, argv: list[str], cwd: Path) -> str:
    proc = hosts.netvigil(argv, cwd)
    assert proc.returncode == 0, f"{argv}: {proc.stderr[-3000:]}\n{hosts.logs()}"
    return proc.stdout


def test_ingest_import_and_detect_on_namespace_hosts_equal_one_process(
        started: Hosts, hosts: Hosts, shared: Path, reference: dict[str, Path]) -> None:
    shutil.copy(shared / "base.duckdb", shared / "hosts.duckdb")
    dask = ["--engine", "dask", "--scheduler", hosts.scheduler, "--store", "hosts.duckdb"]
    bgp = _on_driver(hosts, [*BGP, *dask], shared)
    ooni = _on_driver(hosts, [*OONI_IMPORT, *dask], shared)
    detect = _on_driver(hosts, [*DETECT, *dask], shared)
    assert "epochs 2" in bgp
    assert "dask: 2 shard(s)" in detect, detect
    want = _tables(reference["all"])
    assert len(want["alerts"]) > 0 and len(want["events"]) >= 2  # KZ (+ AS9198), EG
    assert len(want["imports"]) == 2 and ooni  # series + ooni (bgp ingest adds none)
    got = _tables(shared / "hosts.duckdb")
    assert {k: len(v) for k, v in got.items()} == {k: len(v) for k, v in want.items()}
    assert got == want
    # no work file was left in the shared folder, nor a store file in a worker's own one
    assert not [p for d in shared.glob(".*") for p in d.rglob("*") if p.is_file()]
    for w in hosts.worker_hosts:
        assert not list((hosts.base / w).glob("*.duckdb")), w


def _line(proc: subprocess.Popen[str], timeout: float) -> dict[str, object]:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "watcher said nothing"
    out: dict[str, object] = json.loads(proc.stdout.readline())
    return out


def _fault_mid_epoch(hosts: Hosts, shared: Path, store: str,
                     fault: Callable[[str], object]) -> dict[str, object]:
    """Run ``BGP_FULL`` on ``hosts`` into ``shared/store``; when the watcher (a second client
    on the driver host) names the worker holding an epoch, apply ``fault`` to that worker's
    host. Returns the scheduler's story of the epoch keys, after checking the job ended
    well and the epoch went to processing twice (lost with the host, then run again)."""
    shutil.copy(shared / "base.duckdb", shared / store)
    with subprocess.Popen(
            hosts.driver_argv([sys.executable, str(HERE / "dask_hosts.py"), "watch",
                               hosts.scheduler, "bgp-epoch-"]),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True) as watcher:
        try:
            assert _line(watcher, 60) == {"ready": True}
            with subprocess.Popen(
                    hosts.driver_argv([str(Path(sys.executable).parent / "netvigil"), *BGP_FULL,
                                       "--engine", "dask", "--scheduler", hosts.scheduler,
                                       "--store", store]),
                    cwd=shared, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    text=True) as job:
                try:
                    seen = _line(watcher, 90)
                    worker = str(seen["worker"])
                    host = next(h for h in hosts.worker_hosts
                                if f"//{hosts.address(h)}:" in worker)
                    assert fault(host), f"nothing ran on {host}"
                    out, err = job.communicate(timeout=180)
                except BaseException:
                    job.kill()  # never wait for a job the test gave up on
                    raise
            assert job.returncode == 0, f"{err[-3000:]}\n{hosts.logs()}"
            assert watcher.stdin is not None
            watcher.stdin.write("\n")
            watcher.stdin.flush()
            story = _line(watcher, 60)
        finally:
            watcher.kill()
    # the faulty host's epoch went to processing twice, the second time to memory
    for key, moves in story.items():
        assert isinstance(moves, list)
        starts = [finish for start, finish in moves if start == "processing"]
        assert len(starts) >= 2 and "memory" in starts, (key, moves)
    assert story and "epochs 2" in out
    return story


def test_a_worker_host_killed_mid_epoch_changes_nothing(
        started: Hosts, hosts: Hosts, shared: Path, reference: dict[str, Path]) -> None:
    """Every process of the worker host holding a BGP epoch is SIGKILLed; the other host
    reruns the epoch and the store equals one process's."""
    _fault_mid_epoch(hosts, shared, "killed.duckdb", hosts.kill_host)
    assert _tables(shared / "killed.duckdb", BGP_TABLES) == _tables(reference["bgp"],
                                                                    BGP_TABLES)


def test_a_worker_host_cut_off_mid_epoch_changes_nothing(
        tmp_path_factory: pytest.TempPathFactory, shared: Path,
        reference: dict[str, Path]) -> None:
    """A network partition, not a crash: the link of the worker host holding a BGP epoch
    goes down while its processes keep running, so the scheduler gets no FIN or RST,
    only silence, and removes the worker when its heartbeats stop for the worker TTL
    (5 s here, 300 s by default); the other host reruns the epoch and the store equals
    one process's. Its own hosts: the TTL is the scheduler's, for every worker."""
    ok, why = can_build()
    require(ok, why)
    ttl = {"DASK_DISTRIBUTED__SCHEDULER__WORKER_TTL": "5s"}
    with dask_hosts(tmp_path_factory.mktemp("cut"), env=ttl) as hosts:
        def cut(host: str) -> bool:
            hosts.cut_off(host)
            return True

        _fault_mid_epoch(hosts, shared, "cut.duckdb", cut)
        # removed for its silence (check-worker-ttl), not for a closed connection
        assert "failed to heartbeat" in hosts.log("sched").read_text(errors="replace")
    assert _tables(shared / "cut.duckdb", BGP_TABLES) == _tables(reference["bgp"],
                                                                 BGP_TABLES)


def test_an_unreachable_scheduler_is_one_os_error_naming_it(tmp_path: Path) -> None:
    """A scheduler address nobody answers at (a loopback port just closed): exit status 7
    (an OS error: try again later) naming the address, not the store."""
    import socket

    import dask

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{sock.getsockname()[1]}"
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        res = CliRunner().invoke(cli, ["detect", "--engine", "dask", "--scheduler", address,
                                       "--store", str(tmp_path / "s.duckdb")])
    assert res.exit_code == 7, res.output
    assert res.output.startswith("error: OS error: no Dask scheduler answered: ")
    assert res.output.rstrip().endswith(f"({address})"), res.output
