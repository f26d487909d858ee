"""serve's in-memory snapshot (serve/memory.py) answers exactly as the store does.

Expected values always come from the store itself (``Store.read_series``/``read_events``/
``read_alerts`` on the same file, or an app with the snapshot turned off), never from the
snapshot's own layout; a write by another process (as ``netvigil run`` writes) must reach the
snapshot's answers, and until it does, the answers are the previous version's, never a mix.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from netvigil.cli.common import open_store
from netvigil.model import Event, EventKind, EventStatus, Scope, SignalEvidence
from netvigil.model.alerts import Alert, Level
from netvigil.model.entities import make_ref
from netvigil.serve import memory as memory_mod
from netvigil.serve.app import create_app
from netvigil.serve.cache import CACHE_HEADER
from netvigil.serve.gate import StoreGate
from netvigil.serve.memory import SeriesMemory, build_snapshot
from netvigil.store.duck import Store

T0 = 1_767_225_600 - 3 * 86_400
STEP = 300
HEADER = CACHE_HEADER.decode()
ENTITIES = [("country", "KZ"), ("country", "UZ"), ("region", "KZ-ALA"), ("region", "KZ-AST"),
            ("asn", "9198")]


def _populate(path: Path) -> None:
    """Series with gaps, NULL/NaN values, a coarser and a finer grid, events, alerts."""
    rng = np.random.default_rng(3)
    with Store(path) as s:
        for t, c in ENTITIES:
            ref = make_ref(t, c)
            times = T0 + STEP * np.arange(3 * 288, dtype=np.int64)
            keep = rng.random(times.size) > 0.1  # gaps: missing points
            vals = rng.uniform(10, 1000, times.size)
            vals[rng.random(times.size) < 0.05] = np.nan  # stored NaN values
            n = int(keep.sum())
            s.write_points([t] * n, [ref.code] * n, ["bgp"] * n, times[keep], vals[keep],
                           source="test", step=STEP)
            hourly = T0 + 3600 * np.arange(72, dtype=np.int64)  # another signal, step 1 h
            s.write_points([t] * 72, [ref.code] * 72, ["ping-slash24"] * 72, hourly,
                           rng.uniform(1, 50, 72), source="test", step=3600)
            evs = [Event(f"{ref.code}-{i}", ref, ref.code, T0 + i * 20_000,
                         None if i == 2 else T0 + i * 20_000 + 3_600, EventStatus.ENDED,
                         Scope.NATIONAL, EventKind.ROUTING, 1e5, 0.6, 0.3,
                         (SignalEvidence("bgp", "ioda.median", T0, T0 + 600, 1e5, 0.3, 100.0,
                                         1000.0, "critical"),), ("test",))
                   for i in range(3)]
            s.replace_events(ref, evs)
            s.replace_alerts(ref, "bgp", "ioda.median", [
                Alert(ref, "bgp", T0 + k * 7_200, Level(k % 3), 10.0 * k, 100.0,
                      "ioda.median", "< 0.5") for k in range(6)])
        # one point off the 5-minute grid: the store refines that series' grid
        s.write_points(["country"], ["UZ"], ["bgp"], np.array([T0 + 3 * 86_400 + 60]),
                       np.array([5.0]), source="test")


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mem") / "s.duckdb"
    _populate(path)
    return path


def _windows(seed: int) -> Iterator[tuple[int | None, int | None]]:
    rnd = random.Random(seed)
    yield None, None
    yield T0 - 86_400, T0  # before everything
    yield T0 + 10 * 86_400, None  # after everything
    for _ in range(3):
        a = T0 + rnd.randrange(-3_600, 4 * 86_400)
        yield a, a + rnd.choice([1, 299, 300, 301, 3_600, 86_400, 7 * 86_400])
        yield None, a
        yield a, None


def _same(store: Store, snap: Any, ref: Any, signal: str, grid: Any) -> None:
    for start, until in _windows(hash((ref.code, signal)) & 0xFFFF):
        want = store.read_series(ref, signal, start, until, grid=grid)
        got = snap.read_series(ref, signal, start, until, grid=grid)
        assert (got.start, got.step, got.entity, got.signal) == (
            want.start, want.step, want.entity, want.signal), (ref, signal, start, until)
        np.testing.assert_array_equal(got.values, want.values)


def _compare_all(path: Path, snap: Any) -> int:
    n = 0
    with Store(path, read_only=True) as store:
        for t, c in [*ENTITIES, ("country", "ZZ")]:
            ref = make_ref(t, c)
            for k, signal in enumerate(("bgp", "ping-slash24", "merit-nt")):
                # the routes pass the catalogue's grid; other callers let it be looked up
                grid = store.series_grid(ref, signal) if k % 2 else None
                _same(store, snap, ref, signal, grid)
                n += 1
            for start, until in list(_windows(7))[:6]:
                assert snap.read_events(ref, start, until) == store.read_events(ref, start,
                                                                                until)
                assert snap.read_alerts(ref, start, until) == store.read_alerts(ref, start,
                                                                                until)
        for start, until in _windows(9):
            assert snap.read_events(None, start, until) == store.read_events(None, start, until)
            assert snap.read_alerts(None, start, until) == store.read_alerts(None, start, until)
    return n


def test_snapshot_reads_equal_the_store(store_path: Path) -> None:
    gate = StoreGate(store_path, open_store, 10.0, watch=False)
    try:
        snap = build_snapshot(gate, 1, chunk_series=3)  # several chunks, mixed types
        assert snap is not None and not snap.sparse
        assert _compare_all(store_path, snap) == 6 * 3
        assert build_snapshot(gate, 2, max_points=10) is None  # over the bound: no snapshot
    finally:
        gate.close()


def test_a_series_the_dense_layout_cannot_hold_is_kept_exactly(
        store_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bounds in the series table that disagree with the points (never written by this
    store, but the snapshot must not trust them): that series is kept as sorted pairs."""
    real = memory_mod._layout

    def short(cat: Any, max_points: int) -> Any:
        planned = real(cat, max_points)
        assert planned is not None
        layout, total = planned
        (key, d), rest = layout[0], layout[1:]
        return [(key, memory_mod._Dense(d.offset, d.base + 5, d.n - 5, d.step, d.origin,
                                        d.cap)),
                *rest], total

    monkeypatch.setattr(memory_mod, "_layout", short)
    gate = StoreGate(store_path, open_store, 10.0, watch=False)
    try:
        snap = build_snapshot(gate, 1)
        assert snap is not None and len(snap.sparse) == 1
        (ref, signal), = snap.sparse
        with Store(store_path, read_only=True) as store:
            _same(store, snap, ref, signal, store.series_grid(ref, signal))
    finally:
        gate.close()


# ---------------------------------------------------------------------- over HTTP
URLS = [f"/api/v1/signals/{t}/{c}?from={T0 + 3_600}&until={T0 + 2 * 86_400}&max_points=100"
        for t, c in ENTITIES] + [
    f"/api/v1/signals/country/KZ?normalise=true&from={T0 + 86_400}&signal=bgp",
    f"/api/v1/events?entity_type=country&entity_code=KZ&from={T0}&until={T0 + 86_400}",
    "/api/v1/events?order=score&format=codf",
    "/api/v1/events?format=csv",
    f"/ioda/v2/signals/raw/region/KZ-ALA?datasource=bgp&from={T0}&until={T0 + 86_400}"
    "&maxPoints=50",
    f"/ioda/v2/outages/events?format=ioda&includeAlerts=true&from={T0}"
    f"&until={T0 + 3 * 86_400}",
    f"/ioda/v2/outages/events?entityType=country&entityCode=KZ&from={T0}"
    f"&until={T0 + 3 * 86_400}&includeAlerts=true&format=ioda&orderBy=score/desc&limit=2",
    f"/ioda/v2/signals/raw/country/KZ?from={T0}&until={T0 + 86_400}",
]


#: outside the fast path's subset (fastpath.py) or errors: FastAPI answers them, alike
ODD = [f"/api/v1/signals/country/KZ?normalise=True&from={T0}",  # pydantic's spelling
       "/api/v1/signals/country/KZ?max_points=1",  # 422
       "/api/v1/signals/country/KZ?max_points=%2B50",  # "+50"
       "/api/v1/signals/country/ZZ",  # 404
       "/api/v1/signals/country/KZ?signal=nope",  # 404
       "/api/v1/signals/country/KZ?until=yesterday",  # 422
       "/api/v1/signals/region/KZ-ALA?signal=bgp&signal=ping-slash24&from=&until=",
       "/api/v1/events?entity_type=country&entity_code=KZ&limit=0",  # 422
       "/api/v1/events?entity_type=country&entity_code=KZ&kind=nope",  # 422
       "/api/v1/events?entity_type=country&entity_code=KZ&order=size",  # 422
       "/api/v1/events?entity_code=KZ",  # 422: needs entity_type
       "/api/v1/events?entity_type=country&entity_code=KZ&order=score/desc&limit=2"
       "&format=codf",
       "/api/v1/events?entity_type=region&entity_code=KZ-ALA&format=csv&kind=routing",
       "/api/v1/events?entity_type=country&entity_code=KZ&extra=1",
       f"/ioda/v2/signals/raw/country/KZ?datasource=nope&from={T0}&until={T0 + 600}",  # 400
       f"/ioda/v2/signals/raw/country/KZ?maxPoints=0&from={T0}&until={T0 + 600}",  # 422
       "/ioda/v2/signals/raw/country/KZ",  # 400: from/until required
       f"/ioda/v2/outages/events?entityType=country&entityCode=KZ&from={T0}&until={T0 + 1}"
       "&format=xml",  # 400
       f"/ioda/v2/outages/events?entityType=country&entityCode=KZ&from={T0}&until={T0 + 1}"
       "&includeAlerts=1"]


def _answers(client: TestClient, odd: bool = True) -> list[Any]:
    out: list[Any] = []
    for url in URLS:
        r = client.get(url)
        assert r.status_code == 200, (url, r.text)
        if url.startswith("/ioda/"):  # IODA's envelope carries request times
            out.append({k: v for k, v in r.json().items() if k not in ("metadata", "perf")})
        else:
            out.append(r.content)  # the same bytes, whichever path computed them
    for url in ODD if odd else ():
        r = client.get(url)
        if url.startswith("/ioda/"):
            out.append((r.status_code, {k: v for k, v in r.json().items()
                                        if k not in ("metadata", "perf")}))
        else:
            out.append((r.status_code, r.content))
    return out


def _copy(store_path: Path, tmp_path: Path) -> Path:
    """A private copy of the module's store for a test that writes."""
    path = tmp_path / "s.duckdb"
    shutil.copyfile(store_path, path)
    return path


def test_snapshot_answers_equal_store_answers_across_a_write(store_path: Path,
                                                              tmp_path: Path) -> None:
    path = _copy(store_path, tmp_path)
    with TestClient(create_app(path, open_store=open_store)) as mem, \
            TestClient(create_app(path, open_store=open_store, memory_points=0)) as duck:
        memory: SeriesMemory = mem.app.state.memory  # type: ignore[attr-defined]
        first = memory.wait_fresh(30)
        assert first is not None
        fast = mem.app.state.fast_paths  # type: ignore[attr-defined]
        before = _answers(mem)
        assert before == _answers(duck)
        # the api/v1 URLs with an entity (7) and the IODA ones with an entity (3) took the
        # fast path, and the accepted ODD ones (2 api/v1, 3 IODA errors inside the envelope)
        assert fast.answered == 15
        for url in (URLS[0], URLS[-2], URLS[-1]):  # kept under the snapshot's serial
            assert mem.get(url).headers[HEADER] == "hit", url
        assert memory.serving() is first
        writer = textwrap.dedent(f"""
            from pathlib import Path
            from netvigil.cli.common import open_store
            with open_store(Path({str(path)!r}), wait=20) as s:
                s.write_points(["country"], ["KZ"], ["bgp"], [{T0 + 7_200}], [-1.0],
                               source="w", step={STEP})
        """)
        subprocess.run([sys.executable, "-c", writer], check=True, timeout=60)
        second = memory.wait_fresh(30)
        assert second is not None and second.serial > first.serial
        # a rewritten past value: that series read again whole, the rest patched in place
        assert second.kind == "patch" and memory.patches >= 1 and memory.builds == 1
        assert second.values is first.values
        after = _answers(mem, odd=False)  # the odd ones were compared above
        assert after == _answers(duck, odd=False)
        kz = make_ref("country", "KZ")
        assert second.read_series(kz, "bgp", T0 + 7_200, T0 + 7_500).values.tolist() == [-1.0]
        assert first.read_series(kz, "bgp", T0 + 7_200, T0 + 7_500).values.tolist() != [-1.0]
        assert after[0] != before[0]  # the chart over that bin moved with the write
        assert fast.answered > 15
        assert mem.get(URLS[0]).headers[HEADER] == "hit"


def test_staleness_is_bounded_when_builds_fail(store_path: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """After a write the previous snapshot is served while a new one is built, but never
    longer than ``max_stale_seconds``: then requests read the store (serving() is None)."""
    import time

    from netvigil.model.errors import StoreError

    path = _copy(store_path, tmp_path)
    gate = StoreGate(path, open_store, 10.0)
    memory = SeriesMemory(gate, poll_seconds=0.02, max_stale_seconds=0.6)
    memory.start()
    try:
        first = memory.wait_fresh(30)
        assert first is not None and memory.serving() is first

        def failing(*args: Any, **kwargs: Any) -> None:
            raise StoreError("builds fail from now on")

        monkeypatch.setattr(memory_mod, "build_snapshot", failing)
        monkeypatch.setattr(memory_mod, "patch_snapshot", failing)
        with gate.writer() as store:
            store.write_points(["country"], ["KZ"], ["bgp"], np.array([T0]), np.array([1.0]),
                               source="t", step=STEP)
        time.sleep(0.3)
        assert memory.serving() is first and 0 < memory.stale_seconds() < 0.6
        time.sleep(0.6)
        assert memory.serving() is None and memory.current is first
    finally:
        memory.stop()
        gate.close()
