"""``netvigil serve --workers 2``: the real supervisor and two worker processes on a
loopback port, over a real store file.

Which worker answered is read from the operating system, not from the app: the process
holding the server end of the client's TCP connection (psutil over ``/proc``), so a worker
cannot claim another's answers. Checked: both workers answer, their answers are the same
bytes (IODA's request-time fields aside), a write by another process (this one, through
the CLI's lock-aware opener, as ``netvigil run`` writes) shows in both workers' answers
within ``MAX_STALE_SECONDS``, never goes back, and was patched in (each worker's
``/metrics``: a patch, one whole build), and SIGTERM to the supervisor stops every
process (no orphan worker left, the port and the store file free again).
"""

from __future__ import annotations

import http.client
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

from netvigil.cli.common import open_store
from netvigil.model.entities import make_ref
from netvigil.serve.memory import MAX_STALE_SECONDS
from netvigil.store.duck import Store

T0 = 1_767_225_600 - 2 * 86_400
STEP = 300
BINS = 2 * 288
ENTITIES = [("country", "KZ"), ("country", "UZ"), ("region", "KZ-ALA")]
NEW_BIN = T0 + BINS * STEP  # the bin the writer adds
URLS = [f"/api/v1/signals/country/KZ?signal=bgp&from={T0}&until={T0 + 86_400}&max_points=100",
        f"/api/v1/signals/region/KZ-ALA?signal=bgp&from={T0 + 3_600}&until={T0 + 7_200}",
        f"/ioda/v2/signals/raw/country/UZ?datasource=bgp&from={T0}&until={T0 + 86_400}",
        "/api/v1/entities?q=KZ",
        "/api/v1/events"]
NEW_URL = f"/api/v1/signals/country/KZ?signal=bgp&from={NEW_BIN}&until={NEW_BIN + STEP}"


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("workers") / "s.duckdb"
    rng = np.random.default_rng(4)
    times = T0 + STEP * np.arange(BINS, dtype=np.int64)
    with Store(path) as s:
        for t, c in ENTITIES:
            code = make_ref(t, c).code
            s.write_points([t] * BINS, [code] * BINS, ["bgp"] * BINS, times,
                           rng.uniform(10, 1000, BINS), source="test", step=STEP)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Serve:
    """``netvigil serve --workers 2`` in a subprocess, and who answers on its port."""

    def __init__(self, store: Path, log: Path) -> None:
        exe = shutil.which("netvigil", path=str(Path(sys.executable).parent))
        assert exe is not None
        self.port = _free_port()
        self.log = log
        with log.open("w") as out:
            self.proc = subprocess.Popen(
                [exe, "serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers",
                 "2", "--store", str(store)], stdout=out, stderr=out)
        self.main = psutil.Process(self.proc.pid)

    def children(self) -> list[psutil.Process]:
        """The supervisor's processes: two workers and multiprocessing's resource tracker."""
        return list(self.main.children(recursive=True))

    def workers(self) -> list[psutil.Process]:
        """The worker processes (started with multiprocessing's spawn)."""
        out = []
        for p in self.children():
            try:
                if "spawn_main" in " ".join(p.cmdline()):
                    out.append(p)
            except psutil.NoSuchProcess:
                pass
        return out

    def _request(self, path: str) -> tuple[http.client.HTTPConnection, int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return conn, resp.status, resp.read()
        except BaseException:
            conn.close()
            raise

    def _holders(self) -> dict[int, int]:
        """{client port: pid of the process holding the server end of that connection}."""
        out: dict[int, int] = {}
        for p in [self.main, *self.children()]:
            try:  # a short-lived child can exit between the listing and this read
                conns = p.net_connections(kind="tcp")
            except psutil.NoSuchProcess:
                continue
            for c in conns:
                if c.laddr and c.raddr and c.laddr.port == self.port:
                    out[c.raddr.port] = int(p.pid)
        return out

    def ask_many(self, path: str, clients: int = 8) -> list[tuple[int, int, bytes]]:
        """(pid that answered, status, body) of ``clients`` requests on as many connections
        opened at once, so both workers get some however the kernel hands connections out
        (by a hash of the client's address with a socket per worker, ``SO_REUSEPORT``; to
        whichever accepts first with one shared socket, which one at a time may be the same
        idle worker for all). The connections stay open until their holders are read."""
        with ThreadPoolExecutor(clients) as pool:
            done = list(pool.map(self._request, [path] * clients))
        try:
            holders = self._holders()
            return [(holders[c.sock.getsockname()[1]], status, body) for c, status, body in done]
        finally:
            for c, _, _ in done:
                c.close()

    def ask_each(self, path: str, timeout: float = 60) -> dict[int, tuple[int, bytes]]:
        """Ask until both workers have answered: {pid: (status, body)}. Until a deadline, not
        a number of rounds: on a loaded machine one worker can take every connection for a
        while (the other still building its snapshot, or not scheduled)."""
        seen: dict[int, tuple[int, bytes]] = {}
        rounds, deadline = 0, time.monotonic() + timeout
        while rounds == 0 or time.monotonic() < deadline:
            rounds += 1
            for pid, status, body in self.ask_many(path):
                seen.setdefault(pid, (status, body))
            if len(seen) == 2:
                return seen
        raise AssertionError(f"only {sorted(seen)} answered {path} in {rounds} rounds")

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if len(self.workers()) == 2 and self.ask_many("/health", 1)[0][1] == 200:
                    if all(st == 200 for st, _ in self.ask_each("/health", timeout).values()):
                        return  # both workers accept connections
            except (ConnectionError, OSError, KeyError):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"netvigil serve --workers 2 did not start: {self.log.read_text()}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Last resort after a failed test: nothing this test started stays behind."""
        for p in [*self.children(), self.main]:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        self.proc.wait(timeout=10)


@pytest.fixture
def serve(store_path: Path, tmp_path: Path) -> Iterator[Serve]:
    server = Serve(store_path, tmp_path / "serve.log")
    try:
        server.wait_ready()
        yield server
    finally:
        if server.proc.poll() is None:
            server.stop()


def _comparable(path: str, body: bytes) -> Any:
    if path.startswith("/ioda/"):  # IODA's envelope carries request times
        return {k: v for k, v in json.loads(body).items() if k not in ("metadata", "perf")}
    return body


def _snapshot_fields(metrics: bytes) -> dict[str, float]:
    """``netvigil_memory_snapshot{field=...}`` of one worker's Prometheus text."""
    out = {}
    for line in metrics.decode().splitlines():
        if line.startswith("netvigil_memory_snapshot{"):
            out[line.split('field="', 1)[1].split('"', 1)[0]] = float(line.rsplit(" ", 1)[1])
    return out


def _new_value(body: bytes) -> Any:
    (series,) = json.loads(body)["series"]
    return series["values"]


def test_two_workers_answer_alike_see_a_write_and_stop_on_sigterm(
        serve: Serve, store_path: Path) -> None:
    workers = {p.pid for p in serve.workers()}
    started = {p.pid for p in serve.children()}  # the workers and the resource tracker
    assert len(workers) == 2 and serve.main.pid not in workers

    # both worker processes answer, and alike
    for path in URLS:
        answers = serve.ask_each(path)
        assert set(answers) == workers, path
        (s1, b1), (s2, b2) = answers.values()
        assert s1 == s2 == 200, (path, b1[:200])
        assert _comparable(path, b1) == _comparable(path, b2), path
    before = serve.ask_each(NEW_URL)
    assert [_new_value(b) for _, b in before.values()] == [[None], [None]]  # not stored yet

    # a write by another process reaches both, within the snapshot's staleness bound, once
    # both answer from their first snapshot (before it, requests read DuckDB)
    deadline = time.monotonic() + 60
    while min(_snapshot_fields(b)["serial"] for _, b in serve.ask_each("/metrics").values()) < 1:
        assert time.monotonic() < deadline, "no snapshot in a worker after 60 s"
        time.sleep(0.1)
    with open_store(store_path, wait=30) as store:
        store.write_points(["country"], ["KZ"], ["bgp"], np.array([NEW_BIN]),
                           np.array([4242.0]), source="writer", step=STEP)
    wrote = time.monotonic()
    seen: dict[int, float] = {}
    while len(seen) < 2:
        assert time.monotonic() - wrote < MAX_STALE_SECONDS, f"only {sorted(seen)} saw it"
        answers = serve.ask_many(NEW_URL)  # concurrent: answered in any order
        assert {status for _, status, _ in answers} == {200}
        old = {pid for pid, _, body in answers if _new_value(body) != [4242.0]}
        assert not old & set(seen), "a worker went back to the old answer"
        for pid in {pid for pid, _, _ in answers} - old:
            seen.setdefault(pid, time.monotonic() - wrote)
    assert set(seen) == workers
    # ... through the incremental path in both (a patch, no second whole build)
    for pid, (_, body) in serve.ask_each("/metrics").items():
        fields = _snapshot_fields(body)
        assert fields["patches"] >= 1 and fields["builds"] == 1, (pid, fields)

    # SIGTERM to the supervisor stops every process; port and store are free again
    serve.proc.send_signal(signal.SIGTERM)
    assert serve.proc.wait(timeout=20) == 0, serve.log.read_text()
    deadline = time.monotonic() + 5
    while any(psutil.pid_exists(pid) for pid in started) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in started if psutil.pid_exists(pid)], "orphan processes"
    with socket.socket() as s:
        s.bind(("127.0.0.1", serve.port))
    with open_store(store_path, wait=0):
        pass
