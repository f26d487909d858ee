"""serve's answer cache and catalogue (serve/cache.py): kept per store version, never stale.

The app runs on a small store written here through ``Store.write_points``; expected values
come from the store's own ``read_series`` or from the values written, never from the cache.
A write through the app's gate, and a write by another process (a real subprocess that
opens the file read-write, as ``netvigil run`` does), must both move the version.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from netvigil.cli.common import open_store
from netvigil.serve.app import create_app
from netvigil.serve.cache import (
    CACHE_HEADER,
    CachedAnswer,
    ResponseCache,
    ResponseCacheMiddleware,
    file_signature,
)
from netvigil.store.duck import Store

T0 = 1_767_225_600 - 2 * 86_400
STEP = 300
HEADER = CACHE_HEADER.decode()
SIGNALS = f"/api/v1/signals/country/KZ?signal=bgp&from={T0}&until={T0 + 86_400}"


def _write(path: Path, level: float) -> None:
    times = T0 + STEP * np.arange(288, dtype=np.int64)
    with Store(path) as s:
        s.write_points(["country"] * 288, ["KZ"] * 288, ["bgp"] * 288, times,
                       np.full(288, level), source="test", step=STEP)


@pytest.fixture()
def store_path(tmp_path: Path) -> Path:
    path = tmp_path / "s.duckdb"
    _write(path, 100.0)
    return path


@pytest.fixture()
def client(store_path: Path) -> Iterator[TestClient]:
    # the store path (no in-memory snapshot): every answer is the current version's;
    # test_serve_memory.py covers the snapshot path and its bounded staleness
    with TestClient(create_app(store_path, open_store=open_store, memory_points=0)) as c:
        yield c


def _values(body: dict[str, Any]) -> list[float]:
    return [float(v) for v in body["series"][0]["values"]]


def test_a_repeated_query_is_answered_from_the_cache(client: TestClient) -> None:
    first = client.get(SIGNALS)
    again = client.get(SIGNALS)
    assert first.status_code == again.status_code == 200
    assert (first.headers[HEADER], again.headers[HEADER]) == ("miss", "hit")
    assert again.content == first.content and _values(first.json()) == [100.0] * 288
    other = client.get(SIGNALS + "&max_points=10")  # another URL is another answer
    assert other.headers[HEADER] == "miss" and len(_values(other.json())) == 10
    # errors are never kept; other routes are not cached
    assert client.get("/api/v1/signals/country/ZZ").status_code == 404
    assert client.get("/api/v1/signals/country/ZZ").headers.get(HEADER) == "miss"
    assert HEADER not in client.get("/health").headers
    metrics = client.get("/metrics").text
    assert 'netvigil_http_cache_lookups{result="hit"} 1.0' in metrics


def test_a_write_through_the_app_invalidates(client: TestClient, store_path: Path) -> None:
    assert _values(client.get(SIGNALS).json())[0] == 100.0
    gate = client.app.state.store_gate  # type: ignore[attr-defined]
    with gate.writer() as store:  # the path the app's own uploads take
        store.write_points(["country"], ["KZ"], ["bgp"], [T0], [55.0], source="t", step=STEP)
    after = client.get(SIGNALS)
    assert after.headers[HEADER] == "miss" and _values(after.json())[0] == 55.0


def test_a_write_by_another_process_invalidates(client: TestClient, store_path: Path) -> None:
    assert _values(client.get(SIGNALS).json())[0] == 100.0
    events = client.get("/api/v1/events?entity_type=country&entity_code=KZ").json()
    assert events["count"] == 0
    writer = textwrap.dedent(f"""
        from netvigil.cli.common import open_store
        with open_store(__import__("pathlib").Path({str(store_path)!r}), wait=20) as s:
            s.write_points(["country"], ["KZ"], ["bgp"], [{T0}], [7.0], source="w", step={STEP})
    """)
    subprocess.run([sys.executable, "-c", writer], check=True, timeout=60)
    deadline = time.monotonic() + 10
    while True:  # the gate may still be yielding to the writer: the answer must be new
        r = client.get(SIGNALS)
        if r.status_code == 200 or time.monotonic() > deadline:
            break
    assert r.headers[HEADER] == "miss" and _values(r.json())[0] == 7.0
    assert _values(client.get(SIGNALS).json())[0] == 7.0


def test_serve_reads_with_one_duckdb_thread_per_query(client: TestClient) -> None:
    from netvigil.serve.gate import DUCKDB_THREADS

    gate = client.app.state.store_gate  # type: ignore[attr-defined]
    with gate.reader() as store:
        row = store.connection.execute("SELECT current_setting('threads')").fetchone()
    assert row is not None and int(row[0]) == DUCKDB_THREADS == 1


def test_file_signature_moves_with_every_commit(store_path: Path) -> None:
    before = file_signature(store_path)
    assert before == file_signature(store_path)  # reading changes nothing
    with Store(store_path, read_only=True) as s:
        s.read_series(*_kz_bgp())
    assert file_signature(store_path) == before
    _write(store_path, 1.0)
    assert file_signature(store_path) != before


def _kz_bgp() -> tuple[Any, str]:
    from netvigil.model import EntityRef, EntityType

    return EntityRef(EntityType.COUNTRY, "KZ"), "bgp"


def test_response_cache_bounds_and_versions() -> None:
    cache = ResponseCache(max_bytes=10)

    def ans(n: int) -> CachedAnswer:
        return CachedAnswer(200, [], b"x" * n, None)

    cache.put((1,), ("/a", b""), ans(4))
    cache.put((1,), ("/b", b""), ans(4))
    assert cache.get((1,), ("/a", b"")) is not None  # /a used last: /b goes first
    cache.put((1,), ("/c", b""), ans(4))
    assert cache.get((1,), ("/b", b"")) is None and cache.get((1,), ("/c", b"")) is not None
    assert cache.get((2,), ("/a", b"")) is None  # another version: never an old answer
    cache.put((2,), ("/d", b""), ans(1))
    assert len(cache) == 1  # the old version's entries are gone at once
    cache.put((2,), ("/big", b""), ans(11))
    assert cache.get((2,), ("/big", b"")) is None  # larger than the cache: not kept


def test_an_answer_computed_across_a_write_is_not_kept() -> None:
    """The middleware keeps an answer only if the version did not move while it ran."""
    version = [0]
    calls = [0]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        calls[0] += 1
        version[0] += scope["query_string"] == b"moving"  # a write lands mid-request
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"%d" % calls[0]})

    mw = ResponseCacheMiddleware(app, ResponseCache(), lambda: (version[0],))
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def get(qs: bytes) -> bytes:
        sent.clear()
        scope = {"type": "http", "method": "GET", "path": "/api/v1/events",
                 "query_string": qs}
        await mw(scope, receive, send)
        return bytes(sent[-1]["body"])

    import asyncio

    assert asyncio.run(get(b"moving")) == b"1"
    assert asyncio.run(get(b"moving")) == b"2"  # not kept: recomputed
    assert asyncio.run(get(b"still")) == b"3"
    assert asyncio.run(get(b"still")) == b"3"  # kept
    version[0] += 1
    assert asyncio.run(get(b"still")) == b"4"  # the store moved: recomputed


def test_concurrent_misses_of_one_url_compute_it_once() -> None:
    import asyncio

    calls: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope["query_string"])
        await asyncio.sleep(0.05)  # the answer takes a while: others arrive meanwhile
        status = 500 if scope["query_string"] == b"bad" else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"%d" % len(calls)})

    cache = ResponseCache()
    mw = ResponseCacheMiddleware(app, cache, lambda: (1,))

    async def get(qs: bytes) -> tuple[bytes, bytes]:
        sent: list[dict[str, Any]] = []

        async def send(message: Any) -> None:
            sent.append(message)

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        await mw({"type": "http", "method": "GET", "path": "/api/v1/events",
                  "query_string": qs}, receive, send)
        return bytes(sent[-1]["body"]), dict(sent[0]["headers"])[CACHE_HEADER]

    async def main() -> list[tuple[bytes, bytes]]:
        return list(await asyncio.gather(*(get(q) for q in (b"a", b"a", b"a", b"b",
                                                              b"bad", b"bad"))))

    got = asyncio.run(main())
    assert sorted(calls) == [b"a", b"b", b"bad", b"bad"]  # one computation per good URL
    assert [h for _, h in got[:3]].count(b"miss") == 1 and got[0][0] == got[1][0] == got[2][0]
    assert [h for _, h in got[4:]] == [b"miss", b"miss"]  # an error is not shared
    assert (cache.hits, cache.misses) == (2, 4)  # misses count computations
