"""Fusion on a real DuckDB store: severity, the health of every signal (silent sources
named), and the lifecycle history kept across incremental runs and late data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from netvigil.detect.seasonal import Seasonal
from netvigil.events.runner import run_detection
from netvigil.events.serialize import event_to_dict
from netvigil.model import Event, Series
from test_detect_support import KZ, T0

STEP = 300
PER_H = 3600 // STEP
OUT = T0 + 2 * 86400  # the outage starts two days in (after the one-day warmup)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Any]:
    from netvigil.store.duck import Store

    with Store(tmp_path / "nv.duckdb") as s:
        yield s


def write(store: Any, signal: str, values: np.ndarray, start: int = T0) -> None:
    store.write_series(Series(KZ, signal, start, STEP, values), source="test")


def outage_values(hours_down: float, level: float = 50.0, days: int = 4) -> np.ndarray:
    v = np.full(days * 86400 // STEP, 1000.0)
    i = (OUT - T0) // STEP
    v[i:i + int(hours_down * PER_H)] = level
    return v


def events(store: Any) -> list[Event]:
    return list(store.read_events(KZ))


def detect(store: Any) -> None:
    run_detection(store, detector=Seasonal())


def test_severity_and_the_health_of_every_signal(store: Any) -> None:
    n = 4 * 86400 // STEP
    write(store, "probing", outage_values(6))
    write(store, "bgp", np.full(n, 1000.0))  # routes stay visible
    telescope = np.full(n, 400.0)
    telescope[(OUT - T0) // STEP - 12:] = np.nan  # the telescope feed went silent first
    write(store, "telescope", telescope)
    detect(store)
    (ev,) = events(store)
    assert (ev.start, ev.end) == (OUT, OUT + 6 * 3600)
    sev = ev.assessment["severity"]
    assert sev["share_lost"] == pytest.approx(0.95, abs=0.01)
    assert sev["duration_s"] == 6 * 3600 and sev["ongoing"] is False
    health = {h["signal"]: (h["state"], h["coverage"]) for h in ev.assessment["signals"]}
    assert health == {"probing": ("alerting", 1.0), "bgp": ("normal", 1.0),
                      "telescope": ("silent", 0.0)}
    # round-tripped through the store as JSON, and in the JSON output
    assert json.loads(json.dumps(event_to_dict(ev)))["assessment"]["severity"] == sev
    assert 0.5 < ev.assessment["probability"] < 1.0
    assert "confidence.logistic" in ev.rules and "lifecycle.history" in ev.rules


def actions(ev: Event) -> list[str]:
    return [h["action"] for h in ev.assessment["history"]]


def test_lifecycle_open_close_and_revise_on_late_data(store: Any) -> None:
    full = outage_values(6)
    cut = (OUT - T0) // STEP + 3 * PER_H  # three hours into the outage
    write(store, "probing", full[:cut])
    detect(store)
    (ev,) = events(store)
    assert ev.end is None and actions(ev) == ["open"]
    write(store, "probing", full[cut:], start=T0 + cut * STEP)
    detect(store)
    (ev,) = events(store)
    assert ev.end == OUT + 6 * 3600 and actions(ev) == ["open", "close"]
    detect(store)  # nothing new: nothing changes
    assert actions(events(store)[0]) == ["open", "close"]
    # late data: the two hours after the reported end were down too
    late = np.full(2 * PER_H, 50.0)
    write(store, "probing", late, start=OUT + 6 * 3600)
    detect(store)
    (ev,) = events(store)
    assert ev.end == OUT + 8 * 3600
    assert actions(ev) == ["open", "close", "revise"]
    assert ev.assessment["history"][-1]["previous"] == [ev.id]  # same start and kind: same id


def test_lifecycle_merge_when_late_data_joins_two_events(store: Any) -> None:
    v = outage_values(2)
    i = (OUT - T0) // STEP
    v[i + 3 * PER_H:i + 5 * PER_H] = 50.0  # a second cut after one hour of service
    write(store, "probing", v)
    detect(store)
    first, second = events(store)
    write(store, "probing", np.full(PER_H, 50.0), start=OUT + 2 * 3600)  # the hour between
    detect(store)
    (ev,) = events(store)
    assert (ev.start, ev.end) == (OUT, OUT + 5 * 3600)
    assert actions(ev)[-1] == "merge"
    assert ev.assessment["history"][-1]["previous"] == sorted([first.id, second.id])
