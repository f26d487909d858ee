"""``/ioda/v2``: IODA's envelope and data shapes on the demo store.

The expected shapes are IODA's (ioda-api ``Envelope.php``, ``TimeSeriesNormalizer``,
``OutagesAlertNormalizer``, ``OutagesEventNormalizer``, ``computeSummaryScores``; anchors
§1.7); the expected values are read from the store with the store's API, or computed here
from raw points.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from netvigil.cli.common import open_store
from netvigil.detect.registry import DEFAULT
from netvigil.events.codf import CODF_KEYS
from netvigil.model import EntityRef, EntityType
from netvigil.serve.app import create_app
from netvigil.store.duck import Store

KZ = EntityRef(EntityType.COUNTRY, "KZ")
WINDOW = {"from": 1641254400, "until": 1641945600}  # anchors §1.7's Kazakhstan query
ENVELOPE = {"type", "metadata", "requestParameters", "error", "perf", "data", "copyright"}


@pytest.fixture(scope="module")
def client(demo_store: Path) -> Iterator[TestClient]:
    with TestClient(create_app(demo_store, open_store=open_store)) as c:
        yield c


def _ok(client: TestClient, url: str, kind: str, **params: object) -> object:
    r = client.get(url, params=params)  # type: ignore[arg-type]
    body = r.json()
    assert r.status_code == 200, body
    assert set(body) == ENVELOPE and body["type"] == kind and body["error"] is None
    assert set(body["metadata"]) == {"requestTime", "responseTime"}
    return body["data"]


def test_entities_query_by_code_search_and_relation(client: TestClient) -> None:
    data = _ok(client, "/ioda/v2/entities/query", "entities", entityType="country",
               entityCode="KZ")
    assert data == [{"code": "KZ", "name": "Kazakhstan", "type": "country", "attrs": {}}]
    regions = _ok(client, "/ioda/v2/entities/query", "entities", entityType="region",
                  relatedTo="country/KZ")
    assert isinstance(regions, list) and len(regions) > 10
    assert all(set(e) == {"code", "name", "type", "attrs"} and e["type"] == "region"
               for e in regions)
    found = _ok(client, "/ioda/v2/entities/query", "entities", search="beeline")
    assert isinstance(found, list) and found and all("Beeline" in e["name"] for e in found)


def test_signals_raw_shape_and_values(client: TestClient, demo_store: Path) -> None:
    data = _ok(client, "/ioda/v2/signals/raw/country/KZ", "signals", **WINDOW)
    assert isinstance(data, list) and len(data) == 1  # one entity
    by_ds = {s["datasource"]: s for s in data[0]}
    assert {"ping-slash24", "bgp"} <= set(by_ds)  # IODA's names for probing and bgp
    s = by_ds["ping-slash24"]
    assert set(s) == {"entityType", "entityCode", "entityName", "entityFqid", "datasource",
                      "subtype", "from", "until", "step", "nativeStep", "values"}
    assert (s["step"], s["nativeStep"], s["from"]) == (600, 600, WINDOW["from"])
    assert len(s["values"]) == (WINDOW["until"] - WINDOW["from"]) // 600
    with Store(demo_store, read_only=True) as store:
        stored = store.read_series(KZ, "probing", WINDOW["from"], WINDOW["until"])
    i = (stored.start - WINDOW["from"]) // 600
    assert s["values"][i:i + 5] == pytest.approx(list(stored.values[:5]))


def test_signals_raw_step_widens_to_fit_max_points(client: TestClient) -> None:
    data = _ok(client, "/ioda/v2/signals/raw/country/KZ", "signals", datasource="ping-slash24",
               maxPoints=100, **WINDOW)
    s = data[0][0]  # type: ignore[index]
    n = (WINDOW["until"] - WINDOW["from"]) // 600
    assert s["step"] == 600 * math.ceil(n / 100) and len(s["values"]) <= 100


def test_alerts_shape(client: TestClient, demo_store: Path) -> None:
    data = _ok(client, "/ioda/v2/outages/alerts", "outages.alerts", entityType="country",
               entityCode="KZ", limit=1000, **WINDOW)
    assert isinstance(data, list)
    with Store(demo_store, read_only=True) as store:
        assert len(data) == len(store.read_alerts(KZ, WINDOW["from"], WINDOW["until"]))
    a = data[0]
    assert set(a) == {"datasource", "entity", "time", "level", "condition", "value",
                      "historyValue", "method"}
    assert a["entity"]["code"] == "KZ" and a["level"] in {"normal", "warning", "critical"}


def test_events_codf_is_the_default_and_names_the_5_january_outage(client: TestClient) -> None:
    data = _ok(client, "/ioda/v2/outages/events", "outages.events", entityType="country",
               entityCode="KZ", **WINDOW)
    explicit = _ok(client, "/ioda/v2/outages/events", "outages.events", entityType="country",
                   entityCode="KZ", format="codf", **WINDOW)
    assert data == explicit
    assert isinstance(data, list) and all(tuple(c) == CODF_KEYS for c in data)
    # events.codf names datasources as NetVigil stores them (probing = IODA's ping-slash24)
    jan5 = [c for c in data if 1641340800 <= c["start"] < 1641427200
            and "probing" in c["datasource"].split("+")]
    assert jan5 and jan5[0]["location"] == "country/KZ" and jan5[0]["duration"] > 3600


def test_events_ioda_format_with_alerts(client: TestClient) -> None:
    data = _ok(client, "/ioda/v2/outages/events", "outages.events", entityType="country",
               entityCode="KZ", format="ioda", includeAlerts="true", orderBy="score/desc",
               **WINDOW)
    assert isinstance(data, list) and data
    assert set(data[0]) == {"entity", "from", "until", "score", "datasource", "method",
                            "alerts"}
    scores = [e["score"] for e in data]
    assert scores == sorted(scores, reverse=True)
    assert all(a["entity"]["code"] == "KZ" for e in data for a in e["alerts"])


def test_summary_scores_sum_the_events(client: TestClient, demo_store: Path) -> None:
    data = _ok(client, "/ioda/v2/outages/summary", "outages.summary", entityType="country",
               **WINDOW)
    assert isinstance(data, list)
    kz = next(r for r in data if r["entity"]["code"] == "KZ")
    assert set(kz) == {"scores", "event_cnt", "entity"}
    with Store(demo_store, read_only=True) as store:
        events = store.read_events(KZ, WINDOW["from"], WINDOW["until"])
    assert kz["scores"]["overall"] == pytest.approx(sum(e.score for e in events))
    probing = sum(s.score for e in events for s in e.signals if s.signal == "probing")
    assert kz["scores"][f"ping-slash24.{DEFAULT}"] == pytest.approx(probing)  # the demo's
    assert kz["event_cnt"] == sum(len(e.signals) for e in events)
    overall = [r["scores"]["overall"] for r in data]
    assert overall == sorted(overall, reverse=True)  # IODA's default: score desc


@pytest.mark.parametrize(("url", "status", "words"), [
    ("/ioda/v2/signals/raw/country/KZ?from=1641254400", 400,
     "Missing required request parameter 'until'"),
    ("/ioda/v2/signals/raw/country/KZ?from=1641945600&until=1641254400", 400,
     "must be earlier than until"),
    ("/ioda/v2/signals/raw/country/KZ?from=1641254400&until=1641945600&datasource=gtr", 400,
     "invalid datasource gtr"),
    ("/ioda/v2/signals/raw/country/QQ?from=1641254400&until=1641945600", 400,
     "cannot find corresponding metadata entity"),
    ("/ioda/v2/outages/events?from=1641254400&until=1641945600&format=xml", 400,
     "format must be codf or ioda"),
    ("/ioda/v2/outages/alerts?from=1&until=2&limit=many", 422, "limit"),
])
def test_errors_stay_in_the_envelope(client: TestClient, url: str, status: int,
                                     words: str) -> None:
    r = client.get(url)
    body = r.json()
    assert r.status_code == status and set(body) == ENVELOPE
    assert body["data"] is None and words in body["error"]
