"""Detection fan-out: country shards on Dask workers, results merged by the one store writer.

Why country shards, not ``crc32(entity)``: events roll regions and ASes up to their country
(:mod:`netvigil.events.fusion`), so a country's event needs its regions' and ASes' events in
the same run. A **group** is a country with every entity whose parent is that country
(regions by the registry, ASes by the entities table: the rule of
:func:`netvigil.events.runner._parents`, imported, not restated); an entity without a country
parent is its own group. Groups are packed into shards largest first onto the least loaded
shard (by series count), which balances shards without ever splitting a group.

Why shard stores: a DuckDB file admits one writer process and nobody else while it writes,
so workers never write the store. Each worker makes its own DuckDB file, ``ATTACH``es the
store read-only (several processes may read it together while no writer holds it) and copies
its groups' rows: series, points, alerts, events, detector states (the incremental state of
its series, so a shard resumes where the last run stopped) and the whole entities table. It
then runs the unchanged :func:`~netvigil.events.runner.run_detection` on that file. The
driver, once every shard is done, replaces each group's alerts and states (of the method)
and events in the store with the shard's, all shards in one transaction. A shard task is a
pure function of the store and its group list, so a task lost with a worker is simply run
again (Dask reschedules it) and writes the same shard file.

Costs: every run copies the groups' points (reading the store once, in parallel), not only
the new ones; the result is identical to the single-process run (tests compare alerts,
events and states, on a first run and on an incremental one).
"""

from __future__ import annotations

import shutil
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from netvigil.detect.registry import DEFAULT, get_detector
from netvigil.events.runner import DetectionReport, _parents, run_detection
from netvigil.model import EntityRef, EntityType
from netvigil.store.duck import Store

if TYPE_CHECKING:
    from distributed import Client

Group = tuple[EntityRef, list[EntityRef]]  # (root, members incl. the root)
#: tables copied per group (entity key columns entity_type, entity_code)
_GROUP_TABLES = ("series", "points", "alerts", "events", "detector_state")
_SHARD_ENTITIES = "shard_entities"


def country_groups(store: Store) -> list[Group]:
    """Every entity with series, grouped under its country (module docstring)."""
    keys = store.detection_view("-").keys  # series keys; the method only joins states
    refs = sorted({EntityRef(EntityType(t), c) for t, c in zip(
        keys.entity_type.tolist(), keys.entity_code.tolist(), strict=True)},
        key=lambda e: (e.type.value, e.code))
    parents = _parents(store, refs)
    members: dict[EntityRef, list[EntityRef]] = defaultdict(list)
    for r in refs:
        p = parents.get(r)
        root = p if (p is not None and p.type is EntityType.COUNTRY
                     and r.type is not EntityType.COUNTRY) else r
        members[root].append(r)
    for root, mem in members.items():
        if root not in mem:
            mem.insert(0, root)  # a roll-up country without series of its own
    weight: dict[EntityRef, int] = defaultdict(int)
    for t, c in zip(keys.entity_type.tolist(), keys.entity_code.tolist(), strict=True):
        weight[EntityRef(EntityType(t), c)] += 1
    out = [(root, mem) for root, mem in members.items()]
    out.sort(key=lambda g: (-sum(weight[m] for m in g[1]), g[0].type.value, g[0].code))
    return out


def pack_shards(groups: Sequence[Group], n: int) -> list[list[EntityRef]]:
    """Largest group first onto the least loaded shard (ties: lowest index); empty shards
    are dropped."""
    shards: list[list[EntityRef]] = [[] for _ in range(max(1, n))]
    for _root, mem in groups:
        i = min(range(len(shards)), key=lambda k: (len(shards[k]), k))
        shards[i].extend(mem)
    return [s for s in shards if s]


def _quote(path: Path | str) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def detect_shard(store_path: str, shard_path: str, members: list[tuple[str, str]],
                 detector: str, rebuild: bool) -> DetectionReport:
    """One shard on a worker: copy its groups' rows into ``shard_path``, detect there."""
    target = Path(shard_path)
    target.unlink(missing_ok=True)  # a rescheduled task starts from a clean file
    with Store(target) as shard:
        con = shard.connection
        con.execute(f"CREATE TABLE {_SHARD_ENTITIES} (entity_type VARCHAR, entity_code"
                    " VARCHAR)")
        con.executemany(f"INSERT INTO {_SHARD_ENTITIES} VALUES (?, ?)", members)
        con.execute(f"ATTACH {_quote(store_path)} AS src (READ_ONLY)")
        try:
            con.execute("INSERT INTO entities BY NAME SELECT * FROM src.entities")
            for table in _GROUP_TABLES:
                con.execute(
                    f"INSERT INTO {table} BY NAME SELECT * FROM src.{table} WHERE"
                    f" (entity_type, entity_code) IN (SELECT entity_type, entity_code FROM"
                    f" {_SHARD_ENTITIES})")
        finally:
            con.execute("DETACH src")
        return run_detection(shard, detector=get_detector(detector), rebuild=rebuild)


def merge_shards(store: Store, shard_paths: Sequence[Path], method: str) -> None:
    """Each shard's groups: alerts and states of ``method`` and events replace the
    store's, every shard in one transaction."""
    con = store.connection
    names = [f"shard{i}" for i in range(len(shard_paths))]
    for name, path in zip(names, shard_paths, strict=True):
        con.execute(f"ATTACH {_quote(path)} AS {name} (READ_ONLY)")
    try:
        with store.transaction():
            for name in names:
                mine = ("(entity_type, entity_code) IN (SELECT entity_type, entity_code"
                        f" FROM {name}.{_SHARD_ENTITIES})")
                for table, by_method in (("alerts", True), ("detector_state", True),
                                         ("events", False)):
                    cond = f"{mine} AND method = ?" if by_method else mine
                    params = [method] if by_method else []
                    con.execute(f"DELETE FROM {table} WHERE {cond}", params)
                    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {name}.{table}"
                                f" WHERE {cond}", params)
    finally:
        for name in names:
            con.execute(f"DETACH {name}")


def _sum_reports(reports: Sequence[DetectionReport]) -> DetectionReport:
    return DetectionReport(**{f.name: sum(getattr(r, f.name) for r in reports)
                              for f in fields(DetectionReport)})


@dataclass(frozen=True)
class ShardedRun:
    report: DetectionReport
    shards: int
    groups: int
    sizes: tuple[int, ...]  # entities per shard


def run_detection_dask(client: Client, store_path: Path, *, detector: str = DEFAULT,
                       shards: int, rebuild: bool = False) -> ShardedRun:
    """Fan detection out over ``shards`` country shards on ``client``'s workers.

    The store must not be open for writing in this process while the shards read it: the
    driver opens it read-only to plan, closes it, waits for the shards, then opens it to
    merge.
    """
    from distributed import wait

    with Store(store_path, read_only=True) as store:
        groups = country_groups(store)
    parts = pack_shards(groups, shards)
    # absolute: a worker on another host does not share this process's working directory
    work = Path(tempfile.mkdtemp(prefix=".netvigil-detect-", dir=store_path.parent)).absolute()
    try:
        paths = [work / f"shard-{i:04d}.duckdb" for i in range(len(parts))]
        futures = [client.submit(
            detect_shard, str(store_path.resolve()), str(p),
            [(e.type.value, e.code) for e in part], detector, rebuild,
            key=f"detect-shard-{i}-{p.parent.name}", pure=False)
            for i, (p, part) in enumerate(zip(paths, parts, strict=True))]
        wait(futures)  # type: ignore[no-untyped-call]
        reports = [f.result() for f in futures]
        method = get_detector(detector).method
        with Store(store_path) as store:
            merge_shards(store, paths, method)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sizes = tuple(int(n) for n in np.array([len(p) for p in parts]))
    return ShardedRun(_sum_reports(reports), len(parts), len(groups), sizes)
