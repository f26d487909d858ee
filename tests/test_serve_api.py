"""``netvigil serve``: /api/v1, /health, /metrics on the demo store, and serve beside a writer.

The demo store comes from ``run_demo`` (the session's ``demo_store`` fixture, tests/conftest.py):
the Kazakhstan 2022 reconstruction through the one pipeline and detection. Expected values are
read from the store with the store's own API (or computed here from raw points), never from
the serve code under test. Two tests run real processes on loopback: ``netvigil serve`` on the
demo store, and ``netvigil serve`` beside a writer process that opens the same DuckDB file
read-write bin after bin, as ``netvigil run`` does.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from netvigil.cli.common import open_store
from netvigil.model import EntityRef, EntityType, Scope
from netvigil.serve.app import create_app
from netvigil.serve.memory import MAX_STALE_SECONDS
from netvigil.store.duck import Store

KZ = EntityRef(EntityType.COUNTRY, "KZ")
JAN4, JAN7 = 1641254400, 1641513600  # 2022-01-04/07 00:00 UTC
JAN5, JAN6 = 1641340800, 1641427200


@pytest.fixture(scope="module")
def client(demo_store: Path) -> Iterator[TestClient]:
    with TestClient(create_app(demo_store, open_store=open_store)) as c:
        yield c


@pytest.fixture(scope="module")
def kz_events(demo_store: Path) -> list:  # type: ignore[type-arg]
    with Store(demo_store, read_only=True) as store:
        return store.read_events(KZ)


def test_health_answers_with_the_store_counts(client: TestClient, demo_store: Path) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    with Store(demo_store, read_only=True) as store:
        assert r.json()["counts"]["events"] == store.table_counts()["events"] > 0


def test_entity_search_finds_by_name_and_type(client: TestClient) -> None:
    body = client.get("/api/v1/entities", params={"q": "kazakh", "type": "country"}).json()
    assert [e["fqid"] for e in body["entities"]] == ["country/KZ"]
    asns = client.get("/api/v1/entities", params={"type": "asn", "limit": 3}).json()
    assert asns["count"] == 3 and all(e["type"] == "asn" for e in asns["entities"])
    # regions stored without a name are found by their ISO 3166-2 name
    almaty = client.get("/api/v1/entities", params={"q": "almaty", "type": "region"}).json()
    assert "region/KZ-75" in [e["fqid"] for e in almaty["entities"]]
    assert client.get("/api/v1/entities", params={"q": "%"}).json()["count"] == 0  # literal


def test_entity_page_lists_regions_and_networks(client: TestClient, demo_store: Path) -> None:
    body = client.get("/api/v1/entities/country/kz").json()  # lower case is canonicalised
    assert body["entity"]["name"] == "Kazakhstan"
    regions = {e["code"]: e["name"] for e in body["regions"]}
    assert regions["KZ-75"] == "Almaty" and all(c.startswith("KZ-") for c in regions)
    with Store(demo_store, read_only=True) as store:
        stored_regions = {i.entity.code for i in store.list_series()
                          if i.entity.type is EntityType.REGION and i.entity.code[:3] == "KZ-"}
    assert set(regions) == stored_regions
    assert any(a["code"] == "9198" for a in body["asns"])  # Kazakhtelecom
    region = client.get("/api/v1/entities/region/KZ-75").json()
    assert region["parent"]["fqid"] == "country/KZ"


def test_signals_downsampled_to_max_points_keep_the_mean(client: TestClient,
                                                         demo_store: Path) -> None:
    r = client.get("/api/v1/signals/country/KZ", params={
        "signal": "probing", "from": "2022-01-04T00:00:00Z", "until": str(JAN7),
        "max_points": 50})
    s = r.json()["series"][0]
    assert len(s["values"]) <= 50 and s["step"] % s["native_step"] == 0
    with Store(demo_store, read_only=True) as store:
        rows = store.connection.execute(
            "SELECT time, value FROM points WHERE entity_type='country' AND entity_code='KZ'"
            " AND signal='probing' AND time >= ? AND time < ? ORDER BY time",
            [JAN4, JAN7]).fetchall()
    k = s["step"] // s["native_step"]
    first = [v for t, v in rows if JAN4 <= t < JAN4 + s["step"] and v is not None]
    assert len(first) <= k
    assert s["values"][0] == pytest.approx(sum(first) / len(first))


def test_normalised_signal_is_percent_of_the_week_before(client: TestClient,
                                                         demo_store: Path) -> None:
    r = client.get("/api/v1/signals/country/KZ", params={
        "signal": "probing", "from": JAN5, "until": JAN6, "normalise": "true"}).json()
    s = r["series"][0]
    with Store(demo_store, read_only=True) as store:
        vals = store.connection.execute(
            "SELECT value FROM points WHERE entity_type='country' AND entity_code='KZ'"
            " AND signal='probing' AND time >= ? AND time < ? AND value IS NOT NULL",
            [JAN5 - 7 * 86400, JAN5]).fetchall()
        raw = store.read_series(KZ, "probing", JAN5, JAN6)
    ordinary = float(np.median([v for (v,) in vals]))
    assert s["ordinary"] == pytest.approx(ordinary)
    assert s["values"][0] == pytest.approx(raw.values[0] / ordinary * 100)
    assert min(v for v in s["values"] if v is not None) < 10  # the blackout, % of ordinary


def test_kz_events_in_three_formats_agree(client: TestClient, kz_events: list) -> None:  # type: ignore[type-arg]
    q = {"entity_type": "country", "entity_code": "KZ"}
    js = client.get("/api/v1/events", params=q).json()["events"]
    assert [e["id"] for e in js] == [e.id for e in sorted(kz_events, key=lambda e: e.start)]
    national = [e for e in js if e["kind"] == "outage" and e["start"].startswith("2022-01-05")]
    assert national and national[0]["severity"]["id"] == "severity.near-total"
    csv = client.get("/api/v1/events", params={**q, "format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    assert [ln.split(",")[0] for ln in csv.text.splitlines()[1:]] == [e["id"] for e in js]
    codf = client.get("/api/v1/events", params={**q, "format": "codf"}).json()
    assert [(c["location"], c["start"]) for c in codf] == [
        ("country/KZ", e.start) for e in sorted(kz_events, key=lambda e: e.start)]


def test_event_filters_and_order(client: TestClient) -> None:
    by_score = client.get("/api/v1/events", params={"order": "score/desc",
                                                    "scope": "national"}).json()["events"]
    scores = [e["score"] for e in by_score]
    assert scores == sorted(scores, reverse=True) and len(scores) > 1
    assert {e["scope"] for e in by_score} == {Scope.NATIONAL.value}
    blocks = client.get("/api/v1/events", params={"kind": "platform-block", "from": JAN4,
                                                  "until": "2022-01-12"}).json()["events"]
    assert blocks and {e["kind"] for e in blocks} == {"platform-block"}


def test_alerts_filter_by_entity_and_level(client: TestClient, demo_store: Path) -> None:
    body = client.get("/api/v1/alerts", params={"entity_type": "country", "entity_code": "KZ",
                                                "level": "critical"}).json()
    with Store(demo_store, read_only=True) as store:
        want = [a for a in store.read_alerts(KZ) if a.level.label == "critical"]
    assert body["count"] == len(want) > 0
    assert {a["level"] for a in body["alerts"]} == {"critical"}


def test_summary_puts_near_total_blackouts_first(client: TestClient) -> None:
    rows = client.get("/api/v1/summary", params={"from": JAN4, "until": "2022-01-12",
                                                 "entity_type": "country"}).json()["entities"]
    kz = next(r for r in rows if r["entity"]["code"] == "KZ")
    assert kz["severity"]["label"] == "near-total blackout"
    assert kz["severity"]["connectivity_percent"] < 10
    ranks = [r["severity"]["rank"] for r in rows]
    assert ranks == sorted(ranks, reverse=True)


@pytest.mark.parametrize(("url", "status", "words"), [
    ("/api/v1/events?from=yesterday", 422, "from: expected unix seconds or ISO 8601"),
    ("/api/v1/events?from=2022-01-05&until=2022-01-04", 422, "later than from"),
    ("/api/v1/events?order=loudness", 422, "order"),
    ("/api/v1/events?format=xml", 422, "format"),
    ("/api/v1/events?entity_code=KZ", 422, "entity_code needs entity_type"),
    ("/api/v1/entities/country/KAZ", 400, "ISO 3166-1 alpha-2"),
    ("/api/v1/entities/planet/KZ", 400, "entity type must be one of"),
    ("/api/v1/entities/country/ZZ", 404, "no entity country/ZZ"),
    ("/api/v1/signals/country/KZ?signal=gtr", 404, "no signal gtr"),
    ("/api/v1/signals/country/KZ?max_points=1", 422, "max_points"),
    ("/api/v1/nothing", 404, "Not Found"),
])
def test_errors_are_json_with_status_and_message(client: TestClient, url: str, status: int,
                                                 words: str) -> None:
    r = client.get(url)
    assert r.status_code == status
    err = r.json()["error"]
    assert err["status"] == status and words in err["message"]


def test_a_bug_is_a_json_500_without_the_traceback(demo_store: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from netvigil.serve import queries

    def broken(*_a: object, **_k: object) -> None:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(queries, "read_events", broken)
    app = create_app(demo_store, open_store=open_store)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/api/v1/events")
    assert r.status_code == 500
    assert r.json() == {"error": {"status": 500, "message": "internal error (RuntimeError)"}}


def test_missing_store_is_503(tmp_path: Path) -> None:
    with TestClient(create_app(tmp_path / "none.duckdb", open_store=open_store)) as c:
        r = c.get("/api/v1/events")
    assert r.status_code == 503 and "does not exist" in r.json()["error"]["message"]


def test_a_writer_holding_the_store_past_the_wait_is_503_with_retry_after(
        tmp_path: Path) -> None:
    path = tmp_path / "held.duckdb"
    Store(path).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, duckdb\n"  # a writer: read-write, held open
         f"con = duckdb.connect({str(path)!r})\nprint('held', flush=True)\nsys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with TestClient(create_app(path, open_store=open_store, lock_wait=0.3)) as c:
            r = c.get("/api/v1/events")
        assert r.status_code == 503 and r.headers["Retry-After"] == "5"
        assert "stayed locked" in r.json()["error"]["message"]
    finally:
        holder.communicate("", timeout=30)  # closing stdin ends the holder


def test_an_idle_serve_leaves_the_file_free(tmp_path: Path) -> None:
    """After a burst of requests the file is released without any writer knocking: the
    first plain read-write open (no retry) succeeds once serve has been idle."""
    path = tmp_path / "idle.duckdb"
    Store(path).close()
    with TestClient(create_app(path, open_store=open_store)) as c:
        for _ in range(3):
            assert c.get("/health").status_code == 200
        time.sleep(1.5)  # > the gate's idle time (0.5 s) plus its thread's tick
        Store(path).close()  # raises StoreError ("Conflicting lock") if serve held the file
        assert c.get("/health").status_code == 200  # and serve opens it again on demand


def test_openapi_documents_every_route(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for p in ("/api/v1/entities", "/api/v1/entities/{entity_type}/{code}",
              "/api/v1/signals/{entity_type}/{code}", "/api/v1/events", "/api/v1/alerts",
              "/api/v1/summary", "/health", "/metrics", "/ioda/v2/outages/events"):
        assert p in paths, p


def test_metrics_count_requests_by_route(client: TestClient) -> None:
    client.get("/api/v1/entities/country/KZ")
    text = client.get("/metrics").text
    line = next(ln for ln in text.splitlines() if ln.startswith("netvigil_http_requests_total")
                and 'route="/api/v1/entities/{entity_type}/{code}"' in ln
                and 'status="200"' in ln)
    assert float(line.rsplit(" ", 1)[1]) >= 1
    assert "netvigil_events_ongoing" in text and 'netvigil_store_rows{table="events"}' in text


# ------------------------------------------------------------------ real processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def serve_proc(tmp_path: Path) -> Iterator[object]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(store: Path, *options: str) -> str:
        port = _free_port()
        exe = Path(sys.executable).with_name("netvigil")
        log = tmp_path / f"serve-{port}.log"
        with log.open("wb") as sink:
            proc = subprocess.Popen([str(exe), "serve", "--port", str(port), "--store",
                                     str(store), *options], stdout=sink,
                                    stderr=subprocess.STDOUT)
        procs.append(proc)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"netvigil serve exited {proc.returncode}: {log.read_text()}")
            try:
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    return base
            except httpx.TransportError:
                time.sleep(0.1)
        pytest.fail("netvigil serve did not answer /health within 30 s")

    yield start
    for p in procs:
        p.terminate()
        p.wait(timeout=10)


def test_real_serve_on_the_demo_store(serve_proc: object, demo_store: Path) -> None:
    base = serve_proc(demo_store)  # type: ignore[operator]
    with httpx.Client(base_url=base, timeout=20) as http:
        assert http.get("/health").json()["status"] == "ok"
        events = http.get("/api/v1/events", params={"entity_type": "country",
                                                    "entity_code": "KZ"}).json()["events"]
        assert any(e["scope"] == "national" and e["kind"] == "outage"
                   and e["start"].startswith("2022-01-05") for e in events)
        env = http.get("/ioda/v2/signals/raw/country/KZ",
                       params={"from": JAN4, "until": 1641945600}).json()
        assert set(env) >= {"type", "metadata", "requestParameters", "error", "perf", "data"}
        assert env["error"] is None and env["data"][0][0]["entityCode"] == "KZ"
        codf = http.get("/ioda/v2/outages/events", params={
            "from": JAN4, "until": 1641945600, "entityType": "country", "entityCode": "KZ",
            "format": "codf"}).json()["data"]
        assert codf and all(c["location"] == "country/KZ" for c in codf)
        assert "netvigil_http_requests_total" in http.get("/metrics").text


WRITER = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    from netvigil.cli.common import open_store
    path, bins, t0 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    waits = []
    for b in range(bins):
        asked = time.monotonic()
        store = open_store(path, read_only=False, wait=30)
        waits.append(time.monotonic() - asked)
        try:
            t = t0 + 300 * b
            store.write_points(["country"], ["KZ"], ["probing"], np.array([t]),
                               np.array([1000.0 + b]), source="writer", step=300)
        finally:
            store.close()
        time.sleep(0.05)
    print(json.dumps({"bins": bins, "max_wait": max(waits)}))
""")


def test_serve_and_a_writer_process_share_the_store(serve_proc: object,
                                                    tmp_path: Path) -> None:
    """A writer opening the file read-write bin after bin (as `netvigil run` does) gets in
    while serve answers a steady stream of requests, and serve sees every committed bin."""
    store_path = tmp_path / "shared.duckdb"
    t0 = 1_700_000_000
    with Store(store_path) as store:
        store.write_points(["country"] * 288, ["KZ"] * 288, ["probing"] * 288,
                           t0 - 300 * np.arange(288, 0, -1), np.full(288, 900.0),
                           source="seed", step=300)
    # The gate is what is tested here, so requests must read the file: with the in-memory
    # snapshot (serve/memory.py) they are answered from memory and the writer never has to
    # knock (seen in fresh-clone CI: knocks 0). The snapshot across a write is tested in
    # tests/test_serve_memory.py.
    base = serve_proc(store_path, "--memory-points", "0")  # type: ignore[operator]
    stop = threading.Event()
    statuses: list[int] = []

    def hammer() -> None:
        with httpx.Client(base_url=base, timeout=30) as http:
            while not stop.is_set():
                r = http.get("/api/v1/signals/country/KZ", params={"signal": "probing"})
                statuses.append(r.status_code)

    # more clients than serve has worker threads (app.WORKER_THREADS): requests queued
    # behind the writer must not hold the threads the in-flight ones need to finish
    threads = [threading.Thread(target=hammer) for _ in range(12)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)  # the stream is under way before the writer starts
        bins = 3
        out = subprocess.run([sys.executable, "-c", WRITER, str(store_path), str(bins),
                              str(t0)], capture_output=True, text=True, timeout=120,
                             env={**os.environ, "PYTHONWARNINGS": "ignore"})
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["bins"] == bins
    assert report["max_wait"] < 5.0  # the writer was let in, not starved until its 30 s limit
    assert statuses and set(statuses) == {200}, sorted(set(statuses))
    # Answers may lag the store by one snapshot build (serve/memory.py: bounded staleness,
    # MAX_STALE_SECONDS); every committed bin must show within that bound.
    deadline = time.monotonic() + MAX_STALE_SECONDS
    while True:
        last = httpx.get(base + "/api/v1/signals/country/KZ",
                         params={"signal": "probing", "from": t0, "until": t0 + 300 * bins},
                         timeout=30).json()["series"][0]["values"]
        if last == [1000.0 + b for b in range(bins)] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert last == [1000.0 + b for b in range(bins)]
    knocks = next(ln for ln in httpx.get(base + "/metrics", timeout=30).text.splitlines()
                  if ln.startswith("netvigil_store_writer_knocks"))
    assert float(knocks.split()[-1]) >= 1  # serve held the file and let the writer in
