"""Test support: an in-memory store with the same methods as ``netvigil.store.duck.Store``.

Used by the runner and CLI tests until (and besides) the DuckDB store. Named ``test_*`` so
it lives among the files this area owns; its own test checks the rollback contract.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from netvigil.model import Alert, EntityRef, Event, Series, make_ref
from netvigil.store.duck import SeriesInfo

KZ = make_ref("country", "KZ")
T0 = 1_641_254_400  # 2022-01-04T00:00:00Z


def series(signal: str, values: Sequence[float] | np.ndarray, *, step: int = 600,
           entity: EntityRef = KZ, start: int = T0) -> Series:
    return Series(entity, signal, start, step, np.asarray(values, dtype=np.float64))


class FakeStore:
    """Dict-backed stand-in for ``Store``; same signatures, transactional rollback."""

    def __init__(self, path: str | Path = ":memory:", *, read_only: bool = False) -> None:
        self.series: dict[tuple[EntityRef, str], Series] = {}
        self.alerts: dict[tuple[EntityRef, str, str], list[Alert]] = {}
        self.events: dict[EntityRef, list[Event]] = {}
        self.state: dict[str, str] = {}
        self.names: dict[EntityRef, str] = {}
        self.writes = 0

    def close(self) -> None:
        pass

    def __enter__(self) -> FakeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        saved = copy.deepcopy((self.alerts, self.events, self.state))
        try:
            yield
        except BaseException:
            self.alerts, self.events, self.state = saved
            raise

    def entity_name(self, ref: EntityRef) -> str | None:
        return self.names.get(ref)

    def write_series(self, s: Series, *, source: str = "test") -> None:
        self.series[(s.entity, s.signal)] = s

    def list_series(self) -> list[SeriesInfo]:
        out = []
        for (ent, sig), s in sorted(self.series.items()):
            out.append(SeriesInfo(ent, sig, s.step, len(s), s.start, s.end - s.step))
        return out

    def read_series(self, entity: EntityRef, signal: str, start: int | None = None,
                    until: int | None = None) -> Series:
        return self.series[(entity, signal)]

    def replace_alerts(self, entity: EntityRef, signal: str, method: str,
                       alerts: Sequence[Alert]) -> None:
        self.writes += 1
        self.alerts[(entity, signal, method)] = list(alerts)

    def read_alerts(self, entity: EntityRef | None = None, start: int | None = None,
                    until: int | None = None) -> list[Alert]:
        out = [a for (e, _, _), lst in self.alerts.items() for a in lst
               if entity is None or e == entity]
        out = [a for a in out if (start is None or a.time >= start)
               and (until is None or a.time < until)]
        return sorted(out, key=lambda a: (a.entity, a.signal, a.time))

    def replace_events(self, entity: EntityRef, events: Sequence[Event]) -> None:
        self.writes += 1
        self.events[entity] = list(events)

    def read_events(self, entity: EntityRef | None = None, start: int | None = None,
                    until: int | None = None) -> list[Event]:
        out = [ev for e, lst in self.events.items() for ev in lst
               if entity is None or e == entity]
        return [ev for ev in out if (until is None or ev.start < until)
                and (start is None or ev.end is None or ev.end > start)]

    def get_state(self, key: str) -> str | None:
        return self.state.get(key)

    def set_state(self, key: str, value: str) -> None:
        self.writes += 1
        self.state[key] = value


def test_fake_store_rolls_back_a_failed_transaction() -> None:
    store = FakeStore()
    store.set_state("a", "1")
    with pytest.raises(RuntimeError), store.transaction():
        store.set_state("a", "2")
        raise RuntimeError("boom")
    assert store.get_state("a") == "1"
