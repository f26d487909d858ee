"""CLI: ``netvigil detect`` and ``netvigil events`` on a real DuckDB store (no network)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from netvigil.cli.main import cli
from netvigil.events import CODF_KEYS
from netvigil.model import Entity, make_ref
from netvigil.store.duck import Store
from test_detect_support import KZ, T0, series

DAY = 86400 // 600


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    path = tmp_path / "nv.duckdb"
    uz = make_ref("country", "UZ")
    with Store(path) as store:
        store.upsert_entities([Entity(KZ, "Kazakhstan")])
        drop = np.r_[np.full(2 * DAY, 1000.0), np.zeros(36), np.full(DAY, 1000.0)]
        store.write_series(series("probing", drop), source="test")
        bgp = np.r_[np.full(8 * DAY, 1000.0), np.zeros(72), np.full(4 * DAY, 1000.0)]  # step 300
        store.write_series(series("bgp", bgp, step=300), source="test")
        ongoing = np.r_[np.full(2 * DAY, 800.0), np.zeros(12)]
        store.write_series(series("probing", ongoing, entity=uz), source="test")
    return path


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_detect_prints_a_summary_and_is_idempotent(store_path: Path) -> None:
    out = invoke("detect", "--store", str(store_path))
    assert "series examined 3: updated 0, recomputed 3, unchanged 0" in out
    assert "events written 3" in out
    again = invoke("detect", "--store", str(store_path))
    assert "updated 0, recomputed 0, unchanged 3" in again
    assert "alerts written 0" in again


def test_detect_for_one_entity(store_path: Path) -> None:
    out = invoke("detect", "--store", str(store_path), "--entity", "country/uz")
    assert "series examined 1: updated 0, recomputed 1" in out


def test_events_json_fields(store_path: Path) -> None:
    invoke("detect", "--store", str(store_path))
    data = json.loads(invoke("events", "--store", str(store_path), "--format", "json"))
    assert len(data) == 3
    required = {"id", "entity_type", "entity_code", "entity_name", "start", "end", "status",
                "scope", "kind", "score", "confidence", "min_ratio", "signals", "rules"}
    assert all(required <= set(d) for d in data)
    kz = [d for d in data if d["entity_code"] == "KZ"]
    assert [d["start"] for d in kz] == ["2022-01-06T00:00:00Z", "2022-01-08T00:00:00Z"]
    first = kz[0]
    assert first["entity_name"] == "Kazakhstan" and first["entity_type"] == "country"
    assert first["end"] == "2022-01-06T06:00:00Z" and first["status"] == "ended"
    assert first["scope"] == "national" and first["kind"] == "outage"
    assert first["signals"][0]["signal"] == "probing"
    assert first["signals"][0]["start"] == "2022-01-06T00:00:00Z"
    assert "netvigil.seasonal.probing" in first["rules"]  # the default detector's rule
    assert kz[1]["kind"] == "routing"
    uz = next(d for d in data if d["entity_code"] == "UZ")
    assert uz["end"] is None and uz["status"] == "ongoing" and uz["entity_name"] == "Uzbekistan"


def test_events_filters_by_entity_and_window(store_path: Path) -> None:
    invoke("detect", "--store", str(store_path))
    base = ["events", "--store", str(store_path), "--format", "json"]
    assert len(json.loads(invoke(*base, "--entity", "country/KZ"))) == 2
    window = json.loads(invoke(*base, "--entity", "country/KZ", "--from",
                               "2022-01-07T00:00:00Z", "--until", str(T0 + 10 * 86400)))
    assert [d["kind"] for d in window] == ["routing"]


def test_events_csv_codf_and_table(store_path: Path) -> None:
    invoke("detect", "--store", str(store_path))
    rows = list(csv.DictReader(io.StringIO(
        invoke("events", "--store", str(store_path), "--format", "csv"))))
    assert len(rows) == 3 and rows[0]["signals"] == "probing"
    codf = json.loads(invoke("events", "--store", str(store_path), "--format", "codf",
                             "--until", "2022-01-20T00:00:00Z"))
    assert all(tuple(r) == CODF_KEYS for r in codf)
    uz = next(r for r in codf if r["location"] == "country/UZ")
    assert uz["overlaps_window"] is True
    table = invoke("events", "--store", str(store_path))
    assert "Kazakhstan" in table and "ongoing" in table


def test_events_rejects_a_bad_entity(store_path: Path) -> None:
    result = CliRunner().invoke(cli, ["events", "--store", str(store_path),
                                      "--entity", "country"])
    assert result.exit_code == 1
    assert "TYPE/CODE" in result.output
