"""Detection fan-out: country shards on Dask workers, results merged by the one store writer.

Why country shards, not ``crc32(entity)``: events roll regions and ASes up to their country
(:mod:`netvigil.events.fusion`), so a country's event needs its regions' and ASes' events in
the same run. A **group** is a country with every entity whose parent is that country
(regions by the registry, ASes by the entities table: the rule of
:func:`netvigil.events.runner._parents`, imported, not restated); an entity without a country
parent is its own group. Groups are packed costliest first onto the shard with the least
cost so far (the longest-processing-time rule), the cost being the points the detector will
read (whole series without a state, else those after its cursor): detection CPU grows with
them, so shards finish together; packing by entity count left one worker idle while the
other detected a big country.

Why shard stores: a DuckDB file admits one writer process and nobody else while it writes,
so workers never write the store. Each shard runs the unchanged
:func:`~netvigil.events.runner.run_detection` on an **in-memory** store of its own that
``ATTACH``es the store read-only (several processes may read it together while no writer
holds it) and sees it through views: ``series`` of the shard's entities, ``entities`` and
``points`` whole (every points read joins the keys of the shard's series: :func:`_views`).
Only the shard's alerts, events and detector states (the incremental state of its series,
so a shard resumes where the last run stopped) are copied in, because ``run_detection``
writes them; the shard then writes them to a small DuckDB file (temporary
file, rename). The driver, once every shard is done, replaces each group's alerts and states
(of the method) and events in the store with the shard's, all shards in one transaction. A
shard task is a pure function of the store and its group list, so a task lost with a worker
is simply run again (Dask reschedules it) and writes the same file. The files live in a
folder beside the store named by :func:`store_fingerprint`, so a run interrupted before
its merge is resumed by the next one on the unchanged store: only shards without a file
run again (:func:`run_detection_dask`).

Per-task fixed costs, measured (``benchmarks/bench_dask.py --phase workers``, docs/scaling.md
section 1): a first version copied the groups' points into a new DuckDB file per shard and
ran the store migrations on it; the copy (about 0.3 CPU s per million points, more than
detecting them with ``netvigil.seasonal``) and the migrations (about 0.1 CPU s per shard)
did not divide, so two workers spent up to 1.6x the CPU of one. Now nothing but results is
copied and the migrated in-memory store is kept per worker thread (emptied per task).
What still grows with the shard count: each shard scans every points row (its key list
is pushed into the scan as an IN filter, :data:`_SCAN_FILTER_KEYS`, so other shards' rows
no longer probe the join: two halves of 41.5 M points read 1.69 CPU s each against 2.70 for
all, where the join alone cost 2.25 against 3.12) and a fixed
0.08-0.12 CPU s of DuckDB statements per shard, so one shard per worker is the default
(docs/scaling.md, "Detection shards, 2026-12-02 06:00-07:00"). The result is identical to
the single-process run (tests compare alerts, events and states, on a first run and on an
incremental one).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import numpy as np

from netvigil.detect.registry import DEFAULT, get_detector
from netvigil.distributed.engine import Echo, report_progress, roomy_malloc, task_key
from netvigil.events.runner import DetectionReport, _parents, run_detection
from netvigil.model import EntityRef, EntityType
from netvigil.store.duck import Store

if TYPE_CHECKING:
    from distributed import Client

#: tables a shard reads from the store through views: ``series`` filtered to the shard's
#: entities (so ``run_detection`` sees only its series), ``entities`` and ``points`` whole
#: (parents and names of any entity; every points read joins the series keys it got from
#: the filtered ``series``: :func:`_views`)
_FILTERED = ("series",)
_WHOLE = ("entities", "points")
#: tables ``run_detection`` writes: the shard's rows copied in, its results copied out
_RESULT_TABLES = ("alerts", "events", "detector_state")
_SHARD_ENTITIES = "shard_entities"
_REPORT = "shard_report"
#: a run's work folder, beside the store: ``.netvigil-detect-<store>-<method>-<fingerprint>``
_WORK_PREFIX = ".netvigil-detect-"
_LOCAL = threading.local()
#: the most key values a shard's join pushes into the points scan as an IN filter
_SCAN_FILTER_KEYS = 1_000_000
_MINE = ("(entity_type, entity_code) IN (SELECT entity_type, entity_code FROM"
         f" {_SHARD_ENTITIES})")


@dataclass(frozen=True)
class Group:
    """A country with its regions and ASes (module docstring) and what detecting them
    costs: the points the detector will read (``cost``), the measure shards balance."""

    root: EntityRef
    members: list[EntityRef]  # the root included
    cost: int


def _points_to_read(store: Store, method: str, rebuild: bool) -> dict[EntityRef, int]:
    """Per entity, the points ``run_detection`` will feed the detector: the whole series
    without a state of ``method`` (or with ``rebuild``), else those after its cursor
    (from the series' grid: ``(last_time - cursor) / step``), plus 1 per series (a series
    with nothing new still costs its read). Detection CPU grows with points read (the
    detectors are per-point kernels), so this is the cost the shards balance."""
    view = store.detection_view(method, states=False)
    fresh = ~view.has_state if not rebuild else np.ones(len(view.keys), dtype=bool)
    step = np.maximum(view.step, 1)
    new = np.clip((view.last_time - view.cursor) // step, 0, view.n_points)
    cost = np.where(fresh, view.n_points, new) + 1
    out: dict[EntityRef, int] = defaultdict(int)
    for t, c, k in zip(view.keys.entity_type.tolist(), view.keys.entity_code.tolist(),
                       cost.tolist(), strict=True):
        out[EntityRef(EntityType(t), c)] += int(k)
    return out


def country_groups(store: Store, method: str = DEFAULT, rebuild: bool = False
                   ) -> list[Group]:
    """Every entity with series, grouped under its country (module docstring), costliest
    group first."""
    cost = _points_to_read(store, method, rebuild)
    refs = sorted(cost, key=lambda e: (e.type.value, e.code))
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
    out = [Group(root, mem, sum(cost.get(m, 0) for m in mem))
           for root, mem in members.items()]
    out.sort(key=lambda g: (-g.cost, g.root.type.value, g.root.code))
    return out


def pack_shards(groups: Sequence[Group], n: int) -> list[list[EntityRef]]:
    """Costliest group first onto the shard with the least cost so far (ties: lowest
    index; the longest-processing-time rule, within 4/3 of the best split); empty shards
    are dropped. Never splits a group."""
    return [s for s, _ in _pack(groups, n)]


def _pack(groups: Sequence[Group], n: int) -> list[tuple[list[EntityRef], int]]:
    """:func:`pack_shards` with each shard's cost (points to read)."""
    shards: list[list[EntityRef]] = [[] for _ in range(max(1, n))]
    load = [0] * len(shards)
    for g in sorted(groups, key=lambda g: -g.cost):  # stable: ties keep the given order
        i = min(range(len(shards)), key=lambda k: (load[k], k))
        shards[i].extend(g.members)
        load[i] += g.cost
    return [(s, c) for s, c in zip(shards, load, strict=True) if s]


def _quote(path: Path | str) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _shard_store() -> Store:
    """This thread's in-memory shard store, migrated once and emptied per task: a worker
    cache, because the migrations are the largest fixed cost of a shard (about 0.1 s of
    CPU per fresh store, as much as detecting 200,000 points). One per thread: a worker
    with several threads runs several shards at once."""
    store: Store | None = getattr(_LOCAL, "store", None)
    if store is None:
        store = _LOCAL.store = Store(":memory:")
        con = store.connection
        # One DuckDB thread per Dask worker thread: DuckDB's default (one per core) made a
        # single worker use 1.28 cores of 2 and two workers fight over them (41 M points:
        # 1 worker 11.6 CPU s in 9.0 s wall, 2 workers 1.09x; bench_dask.py, docs/scaling.md).
        con.execute("SET threads = 1")
        # The shard's key list pushed into the points scan as an IN filter (DuckDB builds
        # one from a hash join's build side up to this many values; its default is 50), so
        # rows of other shards are dropped in the scan instead of probing the join:
        # `bench_dask.py --phase workers --repeat 5 --rows detect --entities 4800`, two
        # alternated rounds, 2 workers / 1 1.77x and 1.55x with it against 1.50x and 1.30x
        # without (tasks' CPU 1.02-1.21x against 1.21-1.39x); at 70,000 series (35,000 keys
        # a shard) 1.64x against 1.60x (docs/scaling.md, 2026-12-03).
        con.execute(f"SET dynamic_or_filter_threshold = {_SCAN_FILTER_KEYS}")
        for table in (*_WHOLE, *_FILTERED):
            con.execute(f"DROP TABLE {table}")  # views over the store, made per task
        con.execute(f"CREATE TABLE {_SHARD_ENTITIES} (entity_type VARCHAR, entity_code"
                    " VARCHAR)")
        _LOCAL.tables = [r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name ="
            " current_database() AND schema_name = 'main'").fetchall()]
    return store


def _views() -> list[tuple[str, str]]:
    """(table, filter) of the shard store's views over the attached store.

    Why ``points`` is not filtered: ``run_detection`` reads points only through
    ``read_points_after``, a join with the keys of series it found in the (filtered)
    ``series`` view, so that join already selects the shard's rows, and a second filter
    on the view made every shard semi-join the whole points table first. Measured on the
    41.5 M-point store of ``bench_dask.py --entities 4800`` (one DuckDB thread, best of 2,
    load 10): reading half the series 2.91 CPU s through the filtered view, 2.39 s through
    the whole table, 4.74 s for all series in one shard: two shards read 1.23x the CPU of
    one before, 1.01x now. So no pre-partitioning of points (a write of the whole table per
    run, to save 1 % of a read) and no store layout is assumed.
    """
    return [(t, f" WHERE {_MINE}") for t in _FILTERED] + [(t, "") for t in _WHOLE]


def detect_shard(store_path: str, result_path: str, members: list[tuple[str, str]],
                 detector: str, rebuild: bool) -> DetectionReport:
    """One shard on a worker: detect its entities in an in-memory store (emptied: a pure
    function of the store and ``members``) that reads the store's entities, series and
    points through views (nothing copied but the shard's few alerts, events and states),
    then write those results to ``result_path`` (temporary file, rename)."""
    shard = _shard_store()
    con = shard.connection
    for table in _LOCAL.tables:  # every row of an earlier task (or a failed one) goes
        con.execute(f"DELETE FROM {table}")
    con.register("_shard_in", {
        "entity_type": np.array([m[0] for m in members], dtype=object),
        "entity_code": np.array([m[1] for m in members], dtype=object)})
    try:
        con.execute(f"INSERT INTO {_SHARD_ENTITIES} SELECT * FROM _shard_in")
    finally:
        con.unregister("_shard_in")
    con.execute(f"ATTACH {_quote(store_path)} AS src (READ_ONLY)")
    try:
        for table, where in _views():
            con.execute(f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM src.{table}{where}")
        for table in _RESULT_TABLES:
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM src.{table}"
                        f" WHERE {_MINE}")
        # glibc's thresholds as for a BGP epoch: under Dask's MALLOC_TRIM_THRESHOLD_ every
        # allocation above 128 KiB (the reads' numpy columns) is a fresh mmap, faulted in
        # page by page; a 6.2 M-point shard in-process: 128-151 k minor faults and 0.28-0.31
        # s of system CPU without, 74-77 k and 0.15-0.21 s with (docs/scaling.md)
        with roomy_malloc():
            report = run_detection(shard, detector=get_detector(detector), rebuild=rebuild)
    finally:
        con.execute("DETACH src")
    _write_results(con, Path(result_path), report)
    return report


def _write_results(con: duckdb.DuckDBPyConnection, target: Path,
                   report: DetectionReport) -> None:
    """The shard's result tables, its entity list and its report into a small DuckDB file,
    atomically (a rescheduled task rewrites the same file; a resumed run reads the report
    back instead of detecting again)."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        con.execute(f"ATTACH {_quote(tmp)} AS out")
        try:
            for table in (*_RESULT_TABLES, _SHARD_ENTITIES):
                con.execute(f"CREATE TABLE out.{table} AS SELECT * FROM main.{table}")
            cols = [f.name for f in fields(DetectionReport)]
            con.execute(f"CREATE TABLE out.{_REPORT} ({', '.join(c + ' BIGINT' for c in cols)})")
            con.execute(f"INSERT INTO out.{_REPORT} VALUES ({', '.join('?' for _ in cols)})",
                        [getattr(report, c) for c in cols])
        finally:
            con.execute("DETACH out")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
        tmp.with_name(tmp.name + ".wal").unlink(missing_ok=True)


def merge_shards(store: Store, shard_paths: Sequence[Path], method: str
                 ) -> list[DetectionReport]:
    """Each shard's groups: alerts and states of ``method`` and events replace the
    store's, every shard in one transaction. Returns each shard's report (from its file).

    One statement per table over every shard file at once (``UNION ALL`` of each shard's
    rows of its own entities), not one per shard: the merge is the driver's serial part,
    which no worker count divides (Amdahl), and each statement costs 3-10 ms here whatever
    its size. Measured on the 41.5 M-point store of ``bench_dask.py --entities 4800``, two
    shards: ``merge_shards`` 0.143-0.153 s with eight statements per shard (docs/scaling.md)."""
    con = store.connection
    names = [f"shard{i}" for i in range(len(shard_paths))]
    for name, path in zip(names, shard_paths, strict=True):
        con.execute(f"ATTACH {_quote(path)} AS {name} (READ_ONLY)")
    try:
        cols = [f.name for f in fields(DetectionReport)]
        reports = []
        for name in names:
            row = con.execute(f"SELECT {', '.join(cols)} FROM {name}.{_REPORT}").fetchone()
            assert row is not None  # one row per file (_write_results)
            reports.append(DetectionReport(*map(int, row)))
        if not names:
            return reports
        mine = ("(entity_type, entity_code) IN (" + " UNION ALL ".join(
            f"SELECT entity_type, entity_code FROM {n}.{_SHARD_ENTITIES}" for n in names) + ")")

        def rows(table: str) -> str:
            """Every shard's rows of ``table`` for its own entities."""
            return "(" + " UNION ALL BY NAME ".join(
                f"SELECT * FROM {n}.{table} WHERE (entity_type, entity_code) IN"
                f" (SELECT entity_type, entity_code FROM {n}.{_SHARD_ENTITIES})"
                for n in names) + ")"

        with store.transaction():
            for table, by_method in (("alerts", True), ("events", False)):
                cond = "method = ?" if by_method else "TRUE"
                params = [method] if by_method else []
                con.execute(f"DELETE FROM {table} WHERE {mine} AND {cond}", params)
                con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {rows(table)}"
                            f" WHERE {cond}", params)
            _replace_states(con, rows("detector_state"), mine, method)
    finally:
        for name in names:
            con.execute(f"DETACH {name}")
    return reports


def _replace_states(con: duckdb.DuckDBPyConnection, shard_rows: str, mine: str,
                    method: str) -> None:
    """The shards' states of ``method`` (``shard_rows``: a subquery of their rows) replace
    the store's for their entities (``mine``): an upsert on the key, then the store's
    states the shards do not have are deleted (none unless something removed a state; a
    shard starts from a copy of the store's).

    Why not DELETE then INSERT as for alerts and events: the states' key is the table's
    primary key, and deleting and re-inserting every key in one transaction made DuckDB's
    commit the merge's main cost. Measured on an incremental round at 70,000 series (126 MB
    of states; ``bench_dask.py --entities 70000 --days 8``, two shards): statements 0.78 s,
    commit 3.90 s, close 0.05 s, against 0.77 s, 0.31 s and 0.90 s (the checkpoint) with the
    upsert."""
    con.execute(
        f"""
        INSERT INTO detector_state BY NAME SELECT * FROM {shard_rows} WHERE method = ?
        ON CONFLICT (method, entity_type, entity_code, signal) DO UPDATE SET
            config = excluded.config, cursor = excluded.cursor, state = excluded.state
        """, [method])
    con.execute(
        f"""
        DELETE FROM detector_state WHERE {mine} AND method = ?
            AND (method, entity_type, entity_code, signal) NOT IN
                (SELECT (method, entity_type, entity_code, signal) FROM {shard_rows}
                 WHERE method = ?)
        """, [method, method])


def _sum_reports(reports: Sequence[DetectionReport]) -> DetectionReport:
    return DetectionReport(**{f.name: sum(getattr(r, f.name) for r in reports)
                              for f in fields(DetectionReport)})


def store_fingerprint(store: Store, method: str) -> str:
    """What a shard's result depends on in the store, in one statement of order-free
    aggregates: every series' grid, bounds and write counts (``series`` is updated by every
    points write, so new, changed or rewritten points change it), every detector state's
    cursor and bytes, the stored events and the entities (names and parents: events carry
    names, groups follow parents). A re-run on an unchanged store gets the same value, so
    its finished shards are reused; any write that could change a shard's result changes
    it, and the run starts over. DuckDB's ``hash`` is not stable across its versions: an
    upgrade only costs a recomputation. The states' and evidence's bytes are hashed as they
    are: ``md5`` of the states' text took 1.2 s at 70,000 series, ``hash`` of the bytes
    0.08 s (it reads every byte: two blobs differing in their last byte hash apart)."""
    row = store.connection.execute(
        """
        SELECT (SELECT count(*) || ':' || coalesce(bit_xor(hash(entity_type, entity_code,
                signal, step, origin, first_time, last_time, n_points, rewrites)), 0)
                FROM series),
               (SELECT count(*) || ':' || coalesce(bit_xor(hash(entity_type, entity_code,
                signal, method, config, cursor, state)), 0)
                FROM detector_state),
               (SELECT count(*) || ':' || coalesce(bit_xor(hash(id, entity_type,
                entity_code, start_time, end_time, status, evidence)), 0) FROM events),
               (SELECT count(*) || ':' || coalesce(bit_xor(hash(type, code, name, parent)), 0)
                FROM entities)
        """).fetchone()
    return hashlib.sha256("|".join([method, *map(str, row or ())]).encode()).hexdigest()


def _work_stem(store_path: Path, method: str) -> str:
    """The folder-name prefix of this store's and method's runs: another store in the same
    folder never shares (or cleans up) them."""
    where = hashlib.sha256(str(store_path.resolve()).encode()).hexdigest()[:8]
    return f"{_WORK_PREFIX}{where}-{re.sub(r'[^A-Za-z0-9]+', '_', method)}-"


def _work_dir(store_path: Path, method: str, fingerprint: str, rebuild: bool) -> Path:
    """The run's folder beside the store (absolute: a worker on another host does not share
    this process's working directory), named by store, method and fingerprint."""
    tag = hashlib.sha256(f"{fingerprint}|{rebuild}".encode()).hexdigest()[:16]
    return (store_path.parent / f"{_work_stem(store_path, method)}{tag}").absolute()


def _shard_file(work: Path, index: int, members: Sequence[EntityRef], detector: str) -> Path:
    """A shard's result file, named by its members and detector: a different packing (other
    shard count, other parents) never picks up another shard's file."""
    digest = hashlib.sha256("\n".join([detector, *(e.fqid for e in members)]).encode())
    return work / f"shard-{index:04d}-{digest.hexdigest()[:16]}.duckdb"


@dataclass(frozen=True)
class ShardedRun:
    report: DetectionReport
    shards: int
    groups: int
    sizes: tuple[int, ...]  # entities per shard
    costs: tuple[int, ...] = ()  # points to read per shard (what the packing balances)
    #: points to read of the costliest group: shards never split a group (a country's
    #: events roll up its regions' and ASes'), so no worker count runs faster than this
    #: group alone (speed-up bound: sum(costs) / largest_group)
    largest_group: int = 0
    #: wall seconds of the driver's serial part (plan before the shards, merge after):
    #: what no worker count divides (reported by benchmarks/bench_dask.py)
    driver_seconds: float = 0.0
    #: shards whose result file an interrupted run on the unchanged store had written
    resumed: int = 0


def run_detection_dask(client: Client, store_path: Path, *, detector: str = DEFAULT,
                       shards: int, rebuild: bool = False, progress: Echo = None
                       ) -> ShardedRun:
    """Fan detection out over ``shards`` country shards on ``client``'s workers.

    The store must not be open for writing in this process while the shards read it: the
    driver opens it read-only to plan, closes it, waits for the shards, then opens it to
    merge.

    Resume: shard results go to a folder named by the store's path and
    :func:`store_fingerprint`, each file named by its members, written atomically. A run
    interrupted before its merge (the driver stopped, the cluster lost) leaves them; the
    next run on the unchanged store submits only the shards without a file. The merge is
    one transaction, so an interruption during it leaves the store as it was. After a
    merge the folder, and any other of this store's and method's folders (left by
    interrupted runs on an earlier state of the store, never reusable), are removed.
    ``progress`` gets a line as shards finish (:func:`~netvigil.distributed.engine.
    report_progress`).
    """
    from distributed import wait

    method = get_detector(detector).method
    t0 = time.perf_counter()
    with Store(store_path, read_only=True) as store:
        groups = country_groups(store, method, rebuild)
        fingerprint = store_fingerprint(store, method)
    packed = _pack(groups, shards)
    parts = [p for p, _ in packed]
    work = _work_dir(store_path, method, fingerprint, rebuild)
    work.mkdir(exist_ok=True)
    paths = [_shard_file(work, i, part, detector) for i, part in enumerate(parts)]
    todo = [i for i, p in enumerate(paths) if not p.is_file()]
    futures = [client.submit(
        detect_shard, str(store_path.resolve()), str(paths[i]),
        [(e.type.value, e.code) for e in parts[i]], detector, rebuild,
        key=task_key(f"detect-shard-{i}-{work.name}"), pure=False,
        priority=packed[i][1])  # with more shards than workers: costliest first (LPT)
        for i in todo]
    plan = time.perf_counter() - t0
    report_progress(futures, "detect shards", progress, resumed=len(parts) - len(todo))
    wait(futures)  # type: ignore[no-untyped-call]
    for f in futures:
        f.result()  # a shard's exception is raised here
    t1 = time.perf_counter()
    with Store(store_path) as store:
        reports = merge_shards(store, paths, method)
    for old in store_path.parent.glob(f"{_work_stem(store_path, method)}*"):
        shutil.rmtree(old, ignore_errors=True)
    return ShardedRun(_sum_reports(reports), len(parts), len(groups),
                      tuple(len(p) for p in parts), tuple(c for _, c in packed),
                      groups[0].cost if groups else 0, plan + time.perf_counter() - t1,
                      len(parts) - len(todo))
