"""serve's snapshot patched after each write answers exactly as a fresh build and as DuckDB.

Seeded random sequences of the writes a store sees (``netvigil run``'s appended bins, late
points filled in inside a series' span and before it, corrected values, new series, points
off a series' grid, compactions) are applied to a real DuckDB store; after each one the
previous snapshot is patched (:func:`~netvigil.serve.memory.patch_snapshot`) and compared,
on every series and random windows, with a snapshot built whole from the same store and with
``Store.read_series`` itself. The expected answers never come from the patch's own
bookkeeping. Each test also checks which path was taken (patched in place, series read
again whole, whole rebuild), so a patch that silently rebuilt everything would fail, and
that the snapshot published before a patch still answers as it did (no bin it reads was
written: readers see the old snapshot or the new one, never a mix).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from netvigil.model import EntityRef, Event, EventKind, EventStatus, Scope
from netvigil.model.entities import make_ref
from netvigil.serve import memory as memory_mod
from netvigil.serve.memory import SeriesSnapshot, build_snapshot, patch_snapshot
from netvigil.store.duck import Store

T0 = 1_767_225_600 - 2 * 86_400
STEP = 300
SIGNALS = {"bgp": STEP, "ping-slash24": 3_600}


class _Gate:
    """The part of :class:`~netvigil.serve.gate.StoreGate` a snapshot reads through (its
    ``reader`` and ``version``) over one store this test also writes to, so a sequence of
    hundreds of writes costs no file opens; the version moves with each write. The real
    gate with a writer in another process is exercised in test_serve_memory.py."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.writes = 0

    def version(self) -> tuple[int]:
        return (self.writes,)

    @contextmanager
    def reader(self) -> Iterator[Store]:
        yield self.store


class _World:
    """The store under test and the random writes applied to it."""

    def __init__(self, store: Store, seed: int) -> None:
        self.store = store
        self.rnd = random.Random(seed)
        self.rng = np.random.default_rng(seed)
        self.series: list[tuple[EntityRef, str]] = []
        self.last: dict[tuple[EntityRef, str], int] = {}
        self.step: dict[tuple[EntityRef, str], int] = {}
        self.n_new = 0

    def add_series(self, ref: EntityRef, signal: str, bins: int) -> None:
        step = SIGNALS[signal]
        times = T0 + step * np.arange(bins, dtype=np.int64)
        keep = self.rng.random(bins) > 0.15  # gaps, for backfills to fill
        keep[-1] = True
        self._write(ref, signal, times[keep], self.rng.uniform(1, 100, int(keep.sum())), step)
        self.series.append((ref, signal))
        self.last[(ref, signal)] = int(times[-1])
        self.step[(ref, signal)] = step

    def _write(self, ref: EntityRef, signal: str, times: Any, values: Any,
               step: int | None) -> None:
        n = len(times)
        vals = np.asarray(values, dtype=np.float64)
        vals[self.rng.random(n) < 0.05] = np.nan  # stored NULLs
        self.store.write_points([ref.type.value] * n, [ref.code] * n, [signal] * n,
                                np.asarray(times, dtype=np.int64), vals, source="t", step=step)

    # ------------------------------------------------------------------ the writes
    def append_all(self) -> str:
        """One bin of every series in one write, as ``netvigil run`` writes."""
        for key in self.series:
            self.last[key] += self.step[key]
        n = len(self.series)
        vals = self.rng.uniform(1, 100, n)
        vals[self.rng.random(n) < 0.05] = np.nan
        self.store.write_points([r.type.value for r, _ in self.series],
                                [r.code for r, _ in self.series], [s for _, s in self.series],
                                np.array([self.last[k] for k in self.series]), vals, source="t")
        return "append"

    def append_some(self) -> str:
        """A few bins (sometimes after a gap) to a few series."""
        for key in self.rnd.sample(self.series, k=min(3, len(self.series))):
            times = self.last[key] + self.step[key] * np.array(sorted(self.rnd.sample(range(1, 6),
                                                                            k=2)))
            self.last[key] = int(times[-1])
            self._write(*key, times, self.rng.uniform(1, 100, 2), None)
        return "append"

    def backfill_inside(self, append: bool = False) -> str:
        """A late point in a gap inside a series' span; ``append``: and a new bin after
        its last one, in the same write (a late vantage point merged with the new round)."""
        key = self.rnd.choice(self.series)
        have = self.store.read_series(*key)
        gaps = np.flatnonzero(np.isnan(have.values))
        stored = {int(t) for t in self.store.connection.execute(
            "SELECT time FROM points WHERE entity_code = ? AND signal = ?",
            [key[0].code, key[1]]).fetchnumpy()["time"]}
        free = [int(have.times[i]) for i in gaps if int(have.times[i]) not in stored]
        if not free:
            return self.append_some()
        times = [self.rnd.choice(free)]
        if append:
            self.last[key] += self.step[key]
            times.append(self.last[key])
        self._write(*key, times, self.rng.uniform(1, 100, len(times)), None)
        return "backfill"

    def backfill_and_append(self) -> str:
        return self.backfill_inside(append=True)

    def backfill_before(self) -> str:
        key = self.rnd.choice(self.series)
        have = self.store.read_series(*key)
        self._write(*key, [have.start - have.step * self.rnd.randint(1, 3)], [7.0], None)
        return "backfill"

    def rewrite(self) -> str:
        """A corrected value of a stored point (maybe with an appended bin, one write)."""
        key = self.rnd.choice(self.series)
        have = self.store.read_series(*key)
        t = int(self.rnd.choice(have.times[~np.isnan(have.values)].tolist()))
        times, vals = [t], [-self.rnd.uniform(1, 100)]
        if self.rnd.random() < 0.5:
            self.last[key] += have.step
            times.append(self.last[key])
            vals.append(1.0)
        self._write(*key, times, vals, None)
        return "rewrite"

    def new_series(self) -> str:
        self.n_new += 1
        self.add_series(make_ref("asn", str(64_500 + self.n_new)),
                        self.rnd.choice(list(SIGNALS)), self.rnd.randint(5, 40))
        return "new"

    def off_grid(self) -> str:
        """A point between two bins: the store refines that series' grid (or, when an
        earlier one already did, it is an appended bin)."""
        key = self.rnd.choice(self.series)
        self.last[key] += self.step[key] + 60
        self._write(*key, [self.last[key]], [3.0], None)
        grid = self.store.series_grid(*key)
        assert grid is not None
        refined, self.step[key] = grid[0] != self.step[key], grid[0]
        return "off-grid" if refined else "append"

    def compact(self) -> str:
        newest = max(self.last.values())
        self.store.compact_points(closed_before=newest - self.rnd.randint(1, 20) * STEP)
        return "compact"

    def events(self) -> str:
        ref = self.series[0][0]
        s = T0 + STEP * self.rnd.randint(0, 200)
        self.store.replace_events(ref, [Event(f"e{s}", ref, ref.code, s, s + 3_600,
                                              EventStatus.ENDED, Scope.NATIONAL,
                                              EventKind.ROUTING, 1.0, 0.5, 0.2, (), ())])
        return "events"

    def schedule(self, writes: int) -> list[Callable[[], str]]:
        """``writes`` writes in random order: each kind once, the rest drawn at random
        (appends most often, as in a running observatory)."""
        ops = [(self.append_all, 6), (self.append_some, 4), (self.backfill_inside, 1),
               (self.backfill_and_append, 1),
               (self.backfill_before, 1), (self.rewrite, 2), (self.new_series, 1),
               (self.off_grid, 1), (self.compact, 1), (self.events, 1)]
        out = [f for f, _ in ops] + self.rnd.choices(
            [f for f, _ in ops], weights=[w for _, w in ops], k=max(0, writes - len(ops)))
        self.rnd.shuffle(out)
        return out


def _windows(rnd: random.Random, key: tuple[EntityRef, str], world: _World
             ) -> Iterator[tuple[int | None, int | None]]:
    yield None, None
    hi = world.last[key] + 3_600
    for _ in range(3):
        a = rnd.randrange(T0 - 3_600, hi)
        yield a, a + rnd.choice([299, 300, 3_600, 86_400])
    yield rnd.randrange(T0, hi), None


def _answers(snap: SeriesSnapshot, world: _World, seed: int) -> list[Any]:
    rnd = random.Random(seed)
    out: list[Any] = []
    for key in world.series:
        for start, until in _windows(rnd, key, world):
            s = snap.read_series(*key, start, until)
            out.append((s.start, s.step, s.values.tobytes()))
    out.append(snap.read_events())
    return out


def _whole(reader: Any, world: _World) -> list[Any]:
    """Every series over all time, and every event (``reader``: a snapshot or the store)."""
    out: list[Any] = [reader.read_events()]
    for key in world.series:
        s = reader.read_series(*key)
        out.append((s.start, s.step, s.values.tobytes()))
    return out


def _run(tmp_path: Path, seed: int, writes: int, monkeypatch: pytest.MonkeyPatch
         ) -> tuple[Counter[str], Counter[str]]:
    """Apply ``writes`` random writes; after each, patch and compare. Returns the writes
    made by kind and the paths taken by the refresh."""
    rereads = Counter[str]()
    real_pairs = memory_mod._read_pairs

    def counted(store: Store, key: Any) -> Any:
        rereads["series read whole"] += 1
        return real_pairs(store, key)

    monkeypatch.setattr(memory_mod, "_read_pairs", counted)
    made, paths = Counter[str](), Counter[str]()
    with Store(tmp_path / f"p{seed}.duckdb") as store:
        world = _World(store, seed)
        for code in ("KZ", "UZ", "KG"):
            world.add_series(make_ref("country", code), "bgp", 150)
        world.add_series(make_ref("region", "KZ-ALA"), "bgp", 100)
        world.add_series(make_ref("country", "KZ"), "ping-slash24", 30)
        gate: Any = _Gate(store)
        snap = build_snapshot(gate, 1)
        assert snap is not None
        for i, write in enumerate(world.schedule(writes)):
            kind = write()
            made[kind] += 1
            gate.writes += 1
            before = _answers(snap, world, i)
            rereads.clear()
            try:
                new = patch_snapshot(gate, snap, i + 2)
            except memory_mod._Rebuild as why:  # what SeriesMemory does then
                paths[f"rebuilt: {why.reason}"] += 1
                rebuilt = build_snapshot(gate, i + 2)
                assert rebuilt is not None
                new = rebuilt
            else:
                assert new.kind == "patch" and new.values is snap.values
                paths[f"{kind}: patched"] += 1
                paths["series moved"] += sum(1 for k, d in new.dense.items()
                                             if k in snap.dense and snap.dense[k].offset
                                             != d.offset)
                if kind in ("append", "compact", "events"):
                    assert not rereads, (kind, rereads)  # only the new bins were read
                elif kind in ("backfill", "rewrite", "new", "off-grid"):
                    assert rereads["series read whole"] == 1, (kind, rereads)
            # the snapshot published before still answers as it did
            assert _answers(snap, world, i) == before, (i, kind)
            fresh = build_snapshot(gate, i + 2)
            assert fresh is not None
            assert _answers(new, world, i + 1000) == _answers(fresh, world, i + 1000), (i, kind)
            assert _whole(new, world) == _whole(store, world), (i, kind)
            assert new.points == fresh.points
            snap = new
    return made, paths


@pytest.mark.parametrize("seed", [1, 2])
def test_patched_snapshot_answers_as_a_fresh_build_and_duckdb(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    """Small room (3 bins) and few free bins, so series outgrow their room and move, and
    the free bins run out (a whole rebuild) within the sequence."""
    monkeypatch.setattr(memory_mod, "HEADROOM_SECONDS", 3 * STEP)
    monkeypatch.setattr(memory_mod, "TAIL_MIN", 800)
    made, paths = _run(tmp_path, seed, 13, monkeypatch)
    assert set(made) >= {"append", "backfill", "rewrite", "new", "compact", "events"}, made
    patched = sum(n for p, n in paths.items() if p.endswith("patched"))
    assert patched >= 9 and paths["rebuilt: free bins used up"] >= 1, paths
    assert paths["series moved"] >= 1, paths


def test_appends_with_the_default_room_never_rebuild(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """With a day of room, ``netvigil run``'s bins (here 8 writes) are all patched in
    place; a burst of corrected values beyond MAX_REREADS series rebuilds."""
    with Store(tmp_path / "d.duckdb") as store:
        world = _World(store, 5)
        for code in ("KZ", "UZ", "KG", "TJ"):
            world.add_series(make_ref("country", code), "bgp", 50)
        gate: Any = _Gate(store)
        first = build_snapshot(gate, 1)
        assert first is not None
        snap = first
        for i in range(8):
            world.append_all()
            gate.writes += 1
            snap = patch_snapshot(gate, snap, i + 2)
            assert snap.kind == "patch"
        assert snap.used == first.used and snap.values is first.values  # none moved
        fresh = build_snapshot(gate, 99)
        assert fresh is not None
        assert _answers(snap, world, 0) == _answers(fresh, world, 0)
        for key in world.series:
            t = int(store.read_series(*key).start)
            world._write(*key, [t], [-5.0], None)
        gate.writes += 1
        with pytest.raises(memory_mod._Rebuild, match="4 series to read whole"):
            patch_snapshot(gate, snap, 100, max_rereads=3)
