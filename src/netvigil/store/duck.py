"""DuckDB-backed store: one embedded file holding series, alerts, events and bookkeeping.

Contract (other modules code against exactly these signatures):

* times are unix seconds (int), values float with NaN = missing (stored as SQL NULL);
* every write is idempotent: writing the same facts twice changes nothing;
* ``transaction()`` groups writes so that a failure leaves the store unchanged.

Why DuckDB: a columnar embedded database gives vectorised upserts of millions of points
from numpy without a server, SQL for ad-hoc questions, and Parquet export for sharing.
Columns are registered straight from numpy arrays (no pandas/pyarrow dependency); DuckDB
turns NaN in a registered float array into NULL, which is exactly our "missing" encoding.

Step of a series (``series.step``/``origin``, decided on every write from the NEW points and
the stored series row only; the stored points are never rescanned, so a write costs
O(new points) whatever the history):

* **Exact case** (a new series, or one whose row still tells every stored time: at most two
  stored points, ``{first_time, last_time}``): the rules below over stored + new times.

  1. the *declared* step of the writer (``write_series`` passes ``Series.step``, IODA's JSON
     carries ``step``; a declaration is remembered in ``series.declared_step``) if every
     time lies on that grid anchored at the first time;
  2. else the signal kind's native step (``signal_kind(name).native_step``) if every time is a
     multiple of it and the most common gap (below) equals it, or there is one point, or the
     most common gap does not hold every point;
  3. else the most common positive difference between consecutive distinct times (ties: the
     smallest) if every point lies on its grid;
  4. else the gcd of all gaps (irregular data: the coarsest grid that loses no point).

* **Refinement** (three or more stored points): every stored time lies on the stored grid
  ``origin + k*step``. If every new time does too, the grid is kept. Otherwise it is refined to
  ``g = gcd(step, (t - origin) mod step for each new t)``, the coarsest grid holding both the
  stored grid and the new points. The declared step replaces ``g`` when it divides ``g``
  (then every point provably lies on it). Rule 2/3 preferences (native, modal gap) are not
  re-evaluated here: they need the gap histogram of the history, which is what this design
  avoids; a grid is only ever refined, never coarsened, once three points are stored.

The grid is anchored at the first time modulo the step (``series.origin``), so ``read_series``
places every stored point on ``origin + k*step`` without binning loss.
``series.first_time/last_time/n_points`` are kept by every write (``list_series`` reads
them, not the points). The ``series.source`` column records the first writer of a series.
"""

from __future__ import annotations

import json
import math
import time as _time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt

from netvigil.model import (
    Alert,
    Entity,
    EntityRef,
    EntityType,
    Event,
    EventKind,
    EventStatus,
    Level,
    Scope,
    Series,
    SignalEvidence,
    StoreError,
    signal_kind,
)
from netvigil.store import migrations
from netvigil.store.detection import DetectionTables

TABLES = (
    "schema_migrations",
    "entities",
    "series",
    "points",
    "alerts",
    "events",
    "imports",
    "state",
    "detector_state",
    "ooni_measurements",
)


@dataclass(frozen=True)
class SeriesInfo:
    entity: EntityRef
    signal: str
    step: int
    points: int  # stored points (missing values included as NULL rows count too)
    first: int | None
    last: int | None


@dataclass(frozen=True)
class WriteResult:
    inserted: int
    updated: int
    unchanged: int

    @property
    def written(self) -> int:
        """Rows that changed the store (inserted + updated)."""
        return self.inserted + self.updated

    def __add__(self, other: WriteResult) -> WriteResult:
        return WriteResult(
            self.inserted + other.inserted,
            self.updated + other.updated,
            self.unchanged + other.unchanged,
        )


#: Closed points are clustered in buckets of this many seconds, aligned to the epoch: a
#: 7-day chart reads one or two buckets, and a compaction rewrites at most one bucket plus
#: the days closed since the last one (compact_points).
CLUSTER_BUCKET_SECONDS = 7 * 86_400
#: Points are "closed" (no longer expected to change) this long before the newest day.
CLOSED_AFTER_SECONDS = 86_400
CLUSTERED_UNTIL_KEY = "points.clustered_until"  # state: points before it are clustered


@dataclass(frozen=True)
class Compaction:
    """What :meth:`Store.compact_points` did: rows rewritten in ``[start, until)``."""

    start: int | None
    until: int | None
    rows: int


@dataclass(frozen=True)
class ImportRecord:
    """One row of the ``imports`` table: which file was loaded, how, and what it did."""

    file_name: str
    sha256: str
    format: str
    rows_read: int
    rows_written: int
    rows_skipped: int
    inserted: int
    updated: int
    unchanged: int
    source_names: tuple[str, ...] = ()
    imported_at: int = 0  # unix seconds; 0 = now


def _float_out(x: float) -> float | str:
    """JSON has no NaN/Infinity; spell them as strings so the evidence stays valid JSON."""
    return x if math.isfinite(x) else repr(x)


def _float_in(x: Any) -> float:
    return float(x)


def _opt_float(x: Any) -> float:
    return float("nan") if x is None else float(x)


def _ref(entity_type: str, code: str) -> EntityRef:
    return EntityRef(EntityType(entity_type), code)


def _pmod(a: str, m: str) -> str:
    """SQL for a mod m in [0, m) (DuckDB's % takes the sign of the dividend)."""
    return f"((({a}) % ({m})) + ({m})) % ({m})"


#: Per touched series: the new grid, bounds and count, from ``_stage`` + ``_hit`` + the stored
#: series row only (see the module docstring, "Step of a series"). ``_native`` maps each
#: signal of the batch to its kind's native step; ``$declared`` is the batch's declared step.
_GRID_SQL = f"""
CREATE OR REPLACE TEMP TABLE _grid AS
WITH agg AS (  -- one pass over the batch; the stored row came along in _stage
    SELECT entity_type, entity_code, signal, count(*) AS n_new,
           min(time) AS tmin, max(time) AS tmax,
           any_value(old_step) AS old_step, any_value(old_origin) AS old_origin,
           any_value(first_time) AS first_time, any_value(last_time) AS last_time,
           coalesce(any_value(old_n), 0) AS old_n, any_value(old_dec) AS old_dec,
           max(CASE WHEN old_step IS NOT NULL
                    THEN {_pmod('time - old_origin', 'old_step')} END) AS max_res
    FROM _stage GROUP BY entity_type, entity_code, signal
),
hits AS (
    SELECT entity_type, entity_code, signal, count(*) AS n_hit FROM _hit GROUP BY ALL
),
cur AS (
    SELECT a.*, n.native, a.n_new - coalesce(h.n_hit, 0) AS n_ins,
           coalesce(CAST($declared AS BIGINT), a.old_dec) AS dec,
           a.old_step IS NULL OR a.old_n <= 2 AS exact
    FROM agg a JOIN _native n USING (signal)
    LEFT JOIN hits h USING (entity_type, entity_code, signal)
),
pts AS (  -- series whose every stored time is known from the row: new times + {{first, last}}
    -- UNION ALL, not UNION: a repeated time only adds a zero gap, which the gap rules skip
    -- (the consecutive positive gaps of a sorted multiset are those of its distinct values),
    -- and a millions-of-rows import then needs no hash-distinct pass over its points.
    SELECT entity_type, entity_code, signal, time FROM _stage
    WHERE old_step IS NULL OR old_n <= 2
    UNION ALL
    SELECT entity_type, entity_code, signal, first_time FROM cur
    WHERE exact AND first_time IS NOT NULL
    UNION ALL
    SELECT entity_type, entity_code, signal, last_time FROM cur
    WHERE exact AND last_time IS NOT NULL
),
gaps AS (
    SELECT entity_type, entity_code, signal, time,
           time - lag(time) OVER (PARTITION BY entity_type, entity_code, signal
                                  ORDER BY time) AS diff
    FROM pts
),
modes AS (  -- most common gap, ties: the smallest
    SELECT entity_type, entity_code, signal, diff AS mode FROM (
        SELECT entity_type, entity_code, signal, diff, count(*) AS c
        FROM gaps WHERE diff > 0 GROUP BY ALL
    ) QUALIFY row_number() OVER (PARTITION BY entity_type, entity_code, signal
                                 ORDER BY c DESC, diff) = 1
),
fullr AS (  -- rules 1-4 over every point: g = gcd of all gaps (NULL for one point)
    SELECT g.entity_type, g.entity_code, g.signal, min(g.time) AS first,
           any_value(m.mode) AS mode,
           nullif(list_reduce(list(DISTINCT g.diff) FILTER (WHERE g.diff > 0),
                              lambda a, b: gcd(a, b), 0::BIGINT), 0) AS g
    FROM gaps g LEFT JOIN modes m USING (entity_type, entity_code, signal)
    GROUP BY ALL
),
refine AS (  -- only series with a new time off their stored grid
    SELECT s.entity_type, s.entity_code, s.signal,
           list_reduce(list(DISTINCT {_pmod('s.time - s.old_origin', 's.old_step')}),
                       lambda a, b: gcd(a, b), 0::BIGINT) AS res
    FROM _stage s
    SEMI JOIN (SELECT * FROM cur WHERE NOT exact AND max_res > 0)
      USING (entity_type, entity_code, signal)
    GROUP BY ALL
),
decided AS (
    SELECT c.*, f.first, f.mode, f.g, gcd(c.old_step, coalesce(r.res, 0)) AS refined,
           CASE
             WHEN c.exact THEN CASE
               WHEN c.dec IS NOT NULL AND (f.g IS NULL OR f.g % c.dec = 0) THEN c.dec
               WHEN f.mode IS NULL
                    OR (f.first % c.native = 0 AND f.g % c.native = 0
                        AND (f.mode = c.native OR f.g <> f.mode)) THEN c.native
               WHEN f.g = f.mode THEN f.mode
               ELSE f.g END
             WHEN c.dec IS NOT NULL AND refined % c.dec = 0 THEN c.dec
             ELSE refined
           END AS step
    FROM cur c
    LEFT JOIN fullr f USING (entity_type, entity_code, signal)
    LEFT JOIN refine r USING (entity_type, entity_code, signal)
)
SELECT entity_type, entity_code, signal, step,
       {_pmod('CASE WHEN exact THEN first ELSE old_origin END', 'step')} AS origin,
       dec AS declared_step,
       least(first_time, tmin) AS first_time, greatest(last_time, tmax) AS last_time,
       old_n + n_ins AS n_points
FROM decided
"""

_SERIES_UPSERT_SQL = """
INSERT INTO series (entity_type, entity_code, signal, step, source, origin, declared_step,
                    first_time, last_time, n_points)
SELECT entity_type, entity_code, signal, step, $source, origin, declared_step,
       first_time, last_time, n_points
FROM _grid
ON CONFLICT (entity_type, entity_code, signal) DO UPDATE SET
    step = excluded.step, origin = excluded.origin, declared_step = excluded.declared_step,
    first_time = excluded.first_time, last_time = excluded.last_time,
    n_points = excluded.n_points
"""


#: DuckDB's wording for a file that is not a whole DuckDB database, and what to tell the user.
_DAMAGE = (
    ("Could not read enough bytes", "is truncated (shorter than its own header says)"),
    ("not a valid DuckDB database", "is not a DuckDB database file"),
)


def _open_failure(path: Path, exc: duckdb.Error) -> str:
    """One readable sentence for a failed open. A damaged file gets a plain sentence (DuckDB's
    text stays on ``__cause__``); other failures keep DuckDB's text (on one line) so lock,
    permission and disk errors stay recognisable to the CLI's boundary."""
    detail = " ".join(str(exc).split())
    for needle, said in _DAMAGE:
        if needle in detail:
            return f"store {path} {said}; restore it from a backup or move it away"
    return f"cannot open store {path}: {detail}"


class Store(DetectionTables):
    """The NetVigil store. Open with a path; the file and its parent dirs are created."""

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._depth = 0
        self._failed = False
        if read_only and not self.path.exists():
            raise StoreError(f"store {self.path} does not exist")
        if not read_only:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create directory for store {self.path}: {exc}") from exc
        try:
            self._con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as exc:
            raise StoreError(_open_failure(self.path, exc)) from exc
        try:
            # No terminal progress bars from inside a library call (imports, CLI output).
            self._con.execute("SET enable_progress_bar = false")
            version = migrations.current_version(self._con)
            if version > migrations.LATEST_VERSION:
                raise StoreError(
                    f"store {self.path} has schema version {version}, newer than this "
                    f"NetVigil understands ({migrations.LATEST_VERSION}); upgrade NetVigil"
                )
            if version < migrations.LATEST_VERSION:
                if read_only:
                    raise StoreError(
                        f"store {self.path} has schema version {version} and needs migration "
                        f"to {migrations.LATEST_VERSION}; open it once read-write"
                    )
                migrations.migrate(self._con)
        except duckdb.Error as exc:  # a truncated file can open and fail at its first read
            self._con.close()
            raise StoreError(_open_failure(self.path, exc)) from exc
        except BaseException:
            self._con.close()
            raise

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The raw DuckDB connection, for read-only ad-hoc SQL (reports, tests)."""
        return self._con

    # -- transactions -------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN/COMMIT, ROLLBACK on any exception. Nested calls join the outer transaction.

        Every write method runs inside ``transaction()`` itself, so a single write is atomic
        and several writes grouped in an outer ``with store.transaction():`` commit together.
        """
        if self._depth > 0:
            self._depth += 1
            try:
                yield
            except BaseException:
                self._failed = True
                raise
            finally:
                self._depth -= 1
            return
        self._con.execute("BEGIN TRANSACTION")
        self._depth = 1
        self._failed = False
        try:
            yield
        except BaseException:
            self._depth = 0
            self._con.execute("ROLLBACK")
            raise
        self._depth = 0
        if self._failed:
            # An inner block failed but its exception was swallowed: do not half-commit.
            self._con.execute("ROLLBACK")
            raise StoreError("a nested write failed; transaction rolled back")
        try:
            self._con.execute("COMMIT")
        except duckdb.Error as exc:
            raise StoreError(f"commit failed: {exc}") from exc

    def schema_version(self) -> int:
        return migrations.current_version(self._con)

    def table_counts(self) -> dict[str, int]:
        """Row count per table, in a fixed order (for ``netvigil store info``)."""
        out: dict[str, int] = {}
        for table in TABLES:
            row = self._con.execute(f"SELECT count(*) FROM {table}").fetchone()
            out[table] = int(row[0]) if row else 0
        return out

    # -- entities -----------------------------------------------------------------------
    def upsert_entities(self, entities: Sequence[Entity]) -> int:
        """Insert or update entities; returns how many rows were inserted or changed.

        An empty name or a None parent never erases what is stored: imports that do not carry
        names must not wipe names another source supplied. Last duplicate in the batch wins.
        """
        if not entities:
            return 0
        latest: dict[EntityRef, Entity] = {e.ref: e for e in entities}
        rows = [
            (
                e.ref.type.value,
                e.ref.code,
                e.name or None,
                e.parent.fqid if e.parent is not None else None,
            )
            for e in latest.values()
        ]
        with self.transaction():
            self._con.execute(
                "CREATE OR REPLACE TEMP TABLE _ent (type VARCHAR, code VARCHAR, name VARCHAR,"
                " parent VARCHAR)"
            )
            self._insert_rows("_ent", ("type", "code", "name", "parent"), rows,
                              select="type, code, name::VARCHAR, parent::VARCHAR")
            row = self._con.execute(
                """
                SELECT count(*) FROM _ent n LEFT JOIN entities e USING (type, code)
                WHERE e.code IS NULL
                   OR coalesce(n.name, e.name) IS DISTINCT FROM e.name
                   OR coalesce(n.parent, e.parent) IS DISTINCT FROM e.parent
                """
            ).fetchone()
            self._con.execute(
                """
                INSERT INTO entities SELECT type, code, name, parent FROM _ent
                ON CONFLICT (type, code) DO UPDATE SET
                    name = coalesce(excluded.name, entities.name),
                    parent = coalesce(excluded.parent, entities.parent)
                """
            )
            self._con.execute("DROP TABLE _ent")
        return int(row[0]) if row else 0

    def entity_name(self, ref: EntityRef) -> str | None:
        row = self._con.execute(
            "SELECT name FROM entities WHERE type = ? AND code = ?", [ref.type.value, ref.code]
        ).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def read_entities(self, entity_type: EntityType | None = None) -> list[Entity]:
        """Stored entities sorted by (type, code)."""
        sql = "SELECT type, code, name, parent FROM entities"
        params: list[object] = []
        if entity_type is not None:
            sql += " WHERE type = ?"
            params.append(entity_type.value)
        rows = self._con.execute(sql + " ORDER BY type, code", params).fetchall()
        return [
            Entity(
                _ref(t, c),
                n or "",
                EntityRef.parse(p) if p else None,
            )
            for t, c, n, p in rows
        ]

    # -- series -------------------------------------------------------------------------
    def write_points(
        self,
        entity_types: Sequence[str],
        entity_codes: Sequence[str],
        signals: Sequence[str],
        times: npt.NDArray[np.int64],
        values: npt.NDArray[np.float64],
        *,
        source: str,
        step: int | None = None,
    ) -> WriteResult:
        """Columnar upsert keyed by (entity_type, entity_code, signal, time).

        Codes must already be canonical (``model.make_ref``). Within one call a repeated key
        keeps the last value. ``step`` optionally declares the grid step of every series in
        the batch (see module docstring). Counts: inserted = new keys, updated = existing keys
        whose value changed (NULL vs number counts as a change), unchanged = the rest.

        Set-based: a fixed number of statements whatever the batch size, and the stored
        points are only probed for keys inside a touched series' stored [first, last] span
        (a new bin after the last one, the streaming case, never reads old points).
        """
        n = len(times)
        if not (len(entity_types) == len(entity_codes) == len(signals) == len(values) == n):
            raise ValueError("write_points: all columns must have the same length")
        if step is not None and step <= 0:
            raise ValueError("step must be positive")
        if n == 0:
            return WriteResult(0, 0, 0)
        cols = {
            "entity_type": np.asarray(entity_types, dtype=object),
            "entity_code": np.asarray(entity_codes, dtype=object),
            "signal": np.asarray(signals, dtype=object),
            "time": np.ascontiguousarray(times, dtype=np.int64),
            "value": np.ascontiguousarray(values, dtype=np.float64),
            "idx": np.arange(n, dtype=np.int64),
        }
        with self.transaction():
            # Copied into a temp table by a replacement scan of the local name, not
            # ``register``ed: a registered view holds its numpy columns until the transaction
            # commits, so a long transaction (a whole-file import, issue 12 defect 11) kept
            # every batch alive (~55 B/value). A dropped temp table is also kept until commit,
            # but in DuckDB's buffer manager, which spills beyond ``memory_limit``.
            _np_points_cols = cols  # noqa: F841 (read by name in the SQL below)
            self._con.execute(
                "CREATE OR REPLACE TEMP TABLE _np_points AS SELECT * FROM _np_points_cols")
            del _np_points_cols, cols
            try:
                return self._upsert("_np_points", n, source, step, copy=False)
            finally:
                self._con.execute("DROP TABLE IF EXISTS _np_points")

    def write_staged_points(self, relation: str, *, source: str, step: int | None = None,
                            unique_keys: bool = False) -> WriteResult:
        """:meth:`write_points` from rows already in this store's connection.

        ``relation`` names a table or view (a temp table of a validated import) with the
        columns ``entity_type, entity_code, signal, time, value, idx`` (value NULL or NaN =
        missing; ``idx`` orders repeated keys, the largest wins). The same upsert, counts and
        step/origin rules as :meth:`write_points` (one body, :meth:`_upsert`); what it saves
        is the round trip of every row through numpy: a staged file of millions of rows goes
        into ``points`` in one ``INSERT ... SELECT``, which DuckDB appends in row groups it
        writes to the database file optimistically, so memory stays bounded by its buffer
        manager however large the transaction (``benchmarks/bench_import.py``).

        ``unique_keys=True`` states that no key repeats in ``relation`` (the CSV importer
        proves it while validating) and skips the store's own repeated-key scan.
        """
        if step is not None and step <= 0:
            raise ValueError("step must be positive")
        if not relation.isidentifier():
            raise ValueError(f"write_staged_points: not a relation name: {relation!r}")
        with self.transaction():
            row = self._con.execute(f"SELECT count(*) FROM {relation}").fetchone()
            n = int(row[0]) if row else 0
            if n == 0:
                return WriteResult(0, 0, 0)
            return self._upsert(relation, n, source, step, copy=False, unique=unique_keys)

    def _upsert(self, rel: str, n: int, source: str, step: int | None, *,
                copy: bool, unique: bool = False) -> WriteResult:
        """The one upsert of points from relation ``rel`` (``n`` rows), inside a transaction.
        ``unique``: the caller proved that no key repeats in ``rel``."""
        if self._is_append_only(rel, unique):
            self._append(rel, source, step)
            return WriteResult(n, 0, 0)
        self._stage_points(rel, copy=copy, unique=unique)
        result = self._merge_stage()
        self._update_series(source, step)
        self._con.execute("DROP TABLE _stage")
        self._con.execute("DROP TABLE _hit")
        return result

    def _is_append_only(self, rel: str, unique: bool = False) -> bool:
        """True when no key repeats in the batch and no time falls inside its series' stored
        [first_time, last_time]: every row is then new (the streaming case: a new bin, a
        first import). Two aggregate scans, nothing materialised."""
        con = self._con
        if not unique:
            row = con.execute(
                "SELECT count(*) FROM (SELECT hash(entity_type, entity_code, signal, time) AS h"
                f" FROM {rel} GROUP BY h HAVING count(*) > 1)"
            ).fetchone()
            if row and row[0]:
                return False
        row = con.execute(
            f"SELECT count(*) FROM {rel} d JOIN series r"
            " USING (entity_type, entity_code, signal)"
            " WHERE d.time BETWEEN r.first_time AND r.last_time"
        ).fetchone()
        return not (row and row[0])

    def _append(self, rel: str, source: str, declared: int | None) -> None:
        """Append-only write straight from ``rel`` (registered columns or a staged table):
        inside a long transaction (a whole-file import) no batch-sized temp table is created
        and dropped, so memory does not grow with every batch (DuckDB keeps dropped tables
        until commit)."""
        con = self._con
        con.execute(
            "INSERT INTO points SELECT entity_type, entity_code, signal, time,"
            f" CASE WHEN isnan(value) THEN NULL ELSE value END FROM {rel}"
        )
        stage = f"""
            _stage AS (
                SELECT d.entity_type, d.entity_code, d.signal, d.time,
                       r.step AS old_step, r.origin AS old_origin, r.first_time, r.last_time,
                       r.n_points AS old_n, r.declared_step AS old_dec
                FROM {rel} d LEFT JOIN series r USING (entity_type, entity_code, signal)
            ),
            _hit AS (SELECT entity_type, entity_code, signal FROM {rel} WHERE false),
        """
        self._update_series(source, declared, stage, rel)

    def _stage_points(self, rel: str, *, copy: bool, unique: bool = False) -> None:
        """``_stage``: the batch deduplicated (last wins), NaN as NULL, each row flagged
        ``maybe`` when its time lies inside its series' stored [first_time, last_time] (only
        those rows can collide with a stored point).

        Registered numpy columns are converted once (``copy``: ``_in``); a staged table is
        read in place. The last-wins aggregate only runs when a hash check finds a repeated
        key (equal keys hash equal, so no repeated hash means no repeated key).
        """
        con = self._con
        src = rel
        if copy:
            con.execute(f"CREATE OR REPLACE TEMP TABLE _in AS SELECT * FROM {rel}")
            src = "_in"
        row = None if unique else con.execute(
            "SELECT count(*) FROM (SELECT hash(entity_type, entity_code, signal, time) AS h"
            f" FROM {src} GROUP BY h HAVING count(*) > 1)"
        ).fetchone()
        if row and row[0]:
            src = f"""(SELECT entity_type, entity_code, signal, time,
                              arg_max_null(value, idx) AS value
                       FROM {src} GROUP BY ALL)"""
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE _stage AS
            SELECT d.entity_type, d.entity_code, d.signal, d.time,
                   CASE WHEN isnan(d.value) THEN NULL ELSE d.value END AS value,
                   coalesce(d.time BETWEEN r.first_time AND r.last_time, false) AS maybe,
                   r.step AS old_step, r.origin AS old_origin, r.first_time, r.last_time,
                   r.n_points AS old_n, r.declared_step AS old_dec
            FROM {src} d LEFT JOIN series r USING (entity_type, entity_code, signal)
            """
        )
        if copy:
            con.execute("DROP TABLE _in")

    def _merge_stage(self) -> WriteResult:
        """Insert new keys, update changed values; exact counts from the probed collisions."""
        con = self._con
        row = con.execute(
            "SELECT count(*), min(time) FILTER (WHERE maybe), max(time) FILTER (WHERE maybe)"
            " FROM _stage"
        ).fetchone()
        assert row is not None
        total, lo, hi = int(row[0]), row[1], row[2]
        if lo is None:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _hit (entity_type VARCHAR, entity_code VARCHAR,"
                " signal VARCHAR, time BIGINT, value DOUBLE, changed BOOLEAN)"
            )
        else:
            # Literal bounds (ints we computed) let DuckDB skip row groups by their zonemaps.
            con.execute(
                f"""
                CREATE OR REPLACE TEMP TABLE _hit AS
                SELECT s.entity_type, s.entity_code, s.signal, s.time, s.value,
                       s.value IS DISTINCT FROM p.value AS changed
                FROM (SELECT * FROM _stage WHERE maybe) s
                JOIN (SELECT * FROM points WHERE time BETWEEN {int(lo)} AND {int(hi)}) p
                  USING (entity_type, entity_code, signal, time)
                """
            )
        hit = con.execute("SELECT count(*), count(*) FILTER (WHERE changed) FROM _hit").fetchone()
        assert hit is not None
        n_hit, n_changed = int(hit[0]), int(hit[1])
        result = WriteResult(total - n_hit, n_changed, n_hit - n_changed)
        if result.inserted:
            if n_hit:
                con.execute(
                    """
                    INSERT INTO points
                    SELECT s.entity_type, s.entity_code, s.signal, s.time, s.value
                    FROM _stage s ANTI JOIN _hit h USING (entity_type, entity_code, signal, time)
                    """
                )
            else:
                con.execute(
                    "INSERT INTO points SELECT entity_type, entity_code, signal, time, value"
                    " FROM _stage"
                )
        if n_changed:
            con.execute(
                f"""
                UPDATE points SET value = h.value FROM _hit h
                WHERE h.changed AND points.time BETWEEN {int(lo)} AND {int(hi)}
                  AND points.entity_type = h.entity_type
                  AND points.entity_code = h.entity_code
                  AND points.signal = h.signal AND points.time = h.time
                """
            )
            # A changed stored value invalidates any detector state that consumed it.
            con.execute(
                """
                UPDATE series SET rewrites = rewrites + 1
                FROM (SELECT DISTINCT entity_type, entity_code, signal FROM _hit
                      WHERE changed) c
                WHERE series.entity_type = c.entity_type
                  AND series.entity_code = c.entity_code AND series.signal = c.signal
                """
            )
        return result

    def _update_series(self, source: str, declared: int | None, stage: str = "",
                       rel: str = "_stage") -> None:
        """Upsert the series rows of ``_stage``: bounds, counts and grid (module docstring).

        O(new points): the stored row (step, origin, first/last time, count) stands for the
        stored points; they are never rescanned.
        """
        con = self._con
        signals = [r[0] for r in con.execute(f"SELECT DISTINCT signal FROM {rel}").fetchall()]
        native = {
            "signal": np.asarray(signals, dtype=object),
            "native": np.array([signal_kind(s).native_step for s in signals], dtype=np.int64),
        }
        con.register("_native", native)
        try:
            sql = _GRID_SQL.replace("WITH agg AS (", f"WITH {stage} agg AS (", 1)
            con.execute(sql, {"declared": declared})
        finally:
            # after a failed statement (e.g. DuckDB out of memory) the transaction is aborted
            # and unregister raises too: keep the first error, the one that says why
            with suppress(duckdb.TransactionException):
                con.unregister("_native")
        con.execute(_SERIES_UPSERT_SQL, {"source": source})
        con.execute("DROP TABLE _grid")

    def write_series(self, series: Series, *, source: str) -> WriteResult:
        """Write every bin of ``series``, NaN bins as NULL rows (explicitly missing)."""
        n = len(series)
        ref = series.entity
        return self.write_points(
            [ref.type.value] * n,
            [ref.code] * n,
            [series.signal] * n,
            series.times,
            np.asarray(series.values, dtype=np.float64),
            source=source,
            step=series.step,
        )

    def list_series(self) -> list[SeriesInfo]:
        """Every series from the series table (bounds and counts kept by each write)."""
        rows = self._con.execute(
            """
            SELECT entity_type, entity_code, signal, step, n_points, first_time, last_time
            FROM series ORDER BY entity_type, entity_code, signal
            """
        ).fetchall()
        return [
            SeriesInfo(
                _ref(t, c),
                s,
                int(step),
                int(n),
                None if first is None else int(first),
                None if last is None else int(last),
            )
            for t, c, s, step, n, first, last in rows
        ]

    def series_grid(self, entity: EntityRef, signal: str) -> tuple[int, int] | None:
        """(step, origin) of a stored series, or None if it is unknown."""
        row = self._con.execute(
            "SELECT step, origin FROM series WHERE entity_type = ? AND entity_code = ?"
            " AND signal = ?",
            [entity.type.value, entity.code, signal],
        ).fetchone()
        return None if row is None else (int(row[0]), int(row[1]))

    def read_series(
        self, entity: EntityRef, signal: str, start: int | None = None, until: int | None = None,
        *, grid: tuple[int, int] | None = None,
    ) -> Series:
        """The stored points on the series' grid (step from the series table), gaps NaN.

        ``start`` is inclusive and ``until`` exclusive (IODA's from/until). The result spans
        the first to the last stored point inside that window; it is not padded to the
        window. An unknown series gives an empty Series with the signal's native step.
        ``grid`` is the series' (step, origin) when the caller already knows it (serve's
        catalogue), saving one statement.
        """
        if grid is None:
            grid = self.series_grid(entity, signal)
        if grid is None:
            return Series(entity, signal, 0, signal_kind(signal).native_step,
                          np.empty(0, dtype=np.float64))
        step, origin = grid
        sql = ("SELECT time, value FROM points WHERE entity_type = ? AND entity_code = ?"
               " AND signal = ?")
        params: list[object] = [entity.type.value, entity.code, signal]
        if start is not None:
            sql += " AND time >= ?"
            params.append(int(start))
        if until is not None:
            sql += " AND time < ?"
            params.append(int(until))
        res = self._con.execute(sql + " ORDER BY time", params).fetchnumpy()
        t = np.asarray(res["time"], dtype=np.int64)
        v = np.ma.filled(np.ma.asarray(res["value"], dtype=np.float64), np.nan)
        return Series.from_points(entity, signal, t, v, step, origin)

    # -- alerts and events --------------------------------------------------------------
    def replace_alerts(self, entity: EntityRef, signal: str, method: str,
                       alerts: Sequence[Alert]) -> None:
        """Replace all alerts of (entity, signal, method) by ``alerts``.

        Rows are stored sorted by (time, level, ...) so the same input, in any order, gives
        identical rows. Alerts for another entity/signal/method are a programming error.
        """
        for a in alerts:
            if a.entity != entity or a.signal != signal or a.method != method:
                raise ValueError(
                    f"alert for {a.entity}/{a.signal}/{a.method} passed to replace_alerts"
                    f" of {entity}/{signal}/{method}"
                )
        ordered = sorted(
            alerts, key=lambda a: (a.time, int(a.level), a.condition, repr(a.value),
                                   repr(a.history_value))
        )
        rows = [
            (entity.type.value, entity.code, signal, method, i, a.time, int(a.level),
             None if math.isnan(a.value) else a.value,
             None if math.isnan(a.history_value) else a.history_value, a.condition)
            for i, a in enumerate(ordered)
        ]
        with self.transaction():
            self._con.execute(
                "DELETE FROM alerts WHERE entity_type = ? AND entity_code = ? AND signal = ?"
                " AND method = ?",
                [entity.type.value, entity.code, signal, method],
            )
            if rows:
                self._insert_rows(
                    "alerts", ("et", "ec", "sig", "meth", "seq", "time", "level", "value",
                               "history_value", "condition"), rows,
                    select="et, ec, sig, meth, seq::BIGINT, time::BIGINT, level::INTEGER,"
                           " value::DOUBLE, history_value::DOUBLE, condition")

    def read_alerts(self, entity: EntityRef | None = None, start: int | None = None,
                    until: int | None = None) -> list[Alert]:
        """Alerts with ``start <= time < until``, sorted by entity, signal, method, time."""
        sql = ("SELECT entity_type, entity_code, signal, method, time, level, value,"
               " history_value, condition FROM alerts WHERE true")
        params: list[object] = []
        if entity is not None:
            sql += " AND entity_type = ? AND entity_code = ?"
            params += [entity.type.value, entity.code]
        if start is not None:
            sql += " AND time >= ?"
            params.append(int(start))
        if until is not None:
            sql += " AND time < ?"
            params.append(int(until))
        sql += " ORDER BY entity_type, entity_code, signal, method, seq"
        return [
            Alert(_ref(t, c), s, int(tm), Level(int(lv)), _opt_float(v), _opt_float(h),
                  m, cond)
            for t, c, s, m, tm, lv, v, h, cond in self._con.execute(sql, params).fetchall()
        ]

    def replace_events(self, entity: EntityRef, events: Sequence[Event]) -> None:
        """Replace all events of ``entity`` (and any stored event with the same ids).

        Stored sorted by (start, id) so identical input gives identical rows.
        """
        for e in events:
            if e.entity != entity:
                raise ValueError(f"event {e.id} of {e.entity} passed to replace_events({entity})")
        ordered = sorted(events, key=lambda e: (e.start, e.id))
        rows = [
            (
                e.id, entity.type.value, entity.code, e.entity_name, e.start, e.end,
                e.status.value, e.scope.value, e.kind.value, e.score, e.confidence,
                e.min_ratio, self._evidence_json(e.signals),
                json.dumps(dict(e.assessment), allow_nan=False), list(e.rules),
            )
            for e in ordered
        ]
        with self.transaction():
            self._con.execute(
                "DELETE FROM events WHERE entity_type = ? AND entity_code = ?",
                [entity.type.value, entity.code],
            )
            if rows:
                ids = [r[0] for r in rows]
                self._con.execute("DELETE FROM events WHERE list_contains(?, id)", [ids])
                flat = [(*r[:-1], "\x1f".join(r[-1])) for r in rows]
                self._insert_rows(
                    "events", ("id", "et", "ec", "name", "start", "end_", "status", "scope",
                               "kind", "score", "confidence", "min_ratio", "evidence",
                               "assessment", "rules"),
                    flat,
                    select="id, et, ec, name, start::BIGINT, end_::BIGINT, status, scope, kind,"
                           " score::DOUBLE, confidence::DOUBLE, min_ratio::DOUBLE, evidence,"
                           " CASE WHEN rules = '' THEN []::VARCHAR[]"
                           " ELSE string_split(rules, chr(31)) END, assessment")

    def _insert_rows(self, target: str, columns: Sequence[str],
                     rows: Sequence[tuple[object, ...]], select: str | None = None,
                     suffix: str = "") -> None:
        """Insert many rows in one statement by registering them as numpy object columns.

        DuckDB's ``executemany`` runs one statement per row (about 1 ms each here); a
        registered dict of numpy arrays inserts 20,000 rows in about 10 ms.
        """
        if not rows:
            return
        cols = {}
        for i, name in enumerate(columns):
            col = np.empty(len(rows), dtype=object)
            col[:] = [r[i] for r in rows]
            cols[name] = col
        self._con.register("_bulk_rows", cols)
        try:
            self._con.execute(
                f"INSERT INTO {target} SELECT {select or ', '.join(columns)} FROM _bulk_rows"
                f" {suffix}"
            )
        finally:
            self._con.unregister("_bulk_rows")

    @staticmethod
    def _evidence_json(signals: Sequence[SignalEvidence]) -> str:
        return json.dumps(
            [
                {
                    "signal": s.signal, "method": s.method, "start": s.start, "end": s.end,
                    "score": _float_out(s.score), "min_ratio": _float_out(s.min_ratio),
                    "min_value": _float_out(s.min_value),
                    "history_value": _float_out(s.history_value),
                    "worst_level": s.worst_level,
                }
                for s in signals
            ],
            allow_nan=False,
        )

    @staticmethod
    def _evidence_from_json(text: str) -> tuple[SignalEvidence, ...]:
        return tuple(
            SignalEvidence(
                signal=d["signal"], method=d["method"], start=int(d["start"]),
                end=None if d["end"] is None else int(d["end"]),
                score=_float_in(d["score"]), min_ratio=_float_in(d["min_ratio"]),
                min_value=_float_in(d["min_value"]),
                history_value=_float_in(d["history_value"]), worst_level=d["worst_level"],
            )
            for d in json.loads(text)
        )

    def read_events(self, entity: EntityRef | None = None, start: int | None = None,
                    until: int | None = None) -> list[Event]:
        """Events overlapping [start, until) (ongoing ones extend to +inf), by start, id."""
        sql = ("SELECT id, entity_type, entity_code, entity_name, start_time, end_time, status,"
               " scope, kind, score, confidence, min_ratio, evidence, rules, assessment"
               " FROM events"
               " WHERE true")
        params: list[object] = []
        if entity is not None:
            sql += " AND entity_type = ? AND entity_code = ?"
            params += [entity.type.value, entity.code]
        if start is not None:
            sql += " AND (end_time IS NULL OR end_time > ?)"
            params.append(int(start))
        if until is not None:
            sql += " AND start_time < ?"
            params.append(int(until))
        sql += " ORDER BY start_time, entity_type, entity_code, id"
        out = []
        for (eid, t, c, name, st, en, status, scope, kind, score, conf, mr, ev,
             rules, assessment) in self._con.execute(sql, params).fetchall():
            out.append(
                Event(
                    id=eid, entity=_ref(t, c), entity_name=name, start=int(st),
                    end=None if en is None else int(en), status=EventStatus(status),
                    scope=Scope(scope), kind=EventKind(kind), score=_opt_float(score),
                    confidence=_opt_float(conf), min_ratio=_opt_float(mr),
                    signals=self._evidence_from_json(ev), rules=tuple(rules),
                    assessment=json.loads(assessment),
                )
            )
        return out

    # -- maintenance ------------------------------------------------------------------
    def compact_points(self, closed_before: int | None = None) -> Compaction:
        """Rewrite closed points clustered by series so a series read skips most of the table.

        Why: points arrive one bin for every series at a time, so the table is ordered by
        time and one series' week is spread over every row group of that week; DuckDB's
        per-row-group min/max (zone maps) can then prune by time only, and a 7-day read of
        one series scans 7 days of all series (docs/api.md, Load). Rewritten ordered by
        (entity_type, entity_code, signal, time) inside :data:`CLUSTER_BUCKET_SECONDS`
        buckets, each row group holds few series and the zone maps on the key columns
        prune the rest; time stays bounded per bucket, so detection's ``time > cursor``
        pruning (store/detection.py) still works.

        Points older than ``closed_before`` (default: the start of the newest point's day
        minus :data:`CLOSED_AFTER_SECONDS`) are closed. Rows from the start of the bucket
        holding the last mark (state :data:`CLUSTERED_UNTIL_KEY`) up to ``closed_before``
        are deleted and inserted again in order, and the mark moves, in one transaction:
        a crash leaves the old rows and mark (DuckDB's WAL), and a second run with nothing
        newly closed rewrites nothing (idempotent). Values never change. Points written
        late into a closed bucket stay where they were appended (correct, only not
        clustered) until that bucket is rewritten.
        """
        with self.transaction():
            if closed_before is None:
                row = self._con.execute("SELECT max(last_time) FROM series").fetchone()
                if row is None or row[0] is None:
                    return Compaction(None, None, 0)
                newest_day = int(row[0]) - int(row[0]) % 86_400
                closed_before = newest_day - CLOSED_AFTER_SECONDS
            mark_text = self.get_state(CLUSTERED_UNTIL_KEY)
            mark = int(mark_text) if mark_text is not None else None
            if mark is not None and closed_before <= mark:
                return Compaction(None, None, 0)
            if mark is None:
                row = self._con.execute("SELECT min(time) FROM points").fetchone()
                if row is None or row[0] is None:
                    return Compaction(None, None, 0)
                mark = int(row[0])
            start = mark - mark % CLUSTER_BUCKET_SECONDS
            bounds = [start, closed_before]
            self._con.execute(
                "CREATE OR REPLACE TEMP TABLE _closed AS SELECT * FROM points"
                " WHERE time >= ? AND time < ?", bounds)
            self._con.execute("DELETE FROM points WHERE time >= ? AND time < ?", bounds)
            row = self._con.execute(
                "INSERT INTO points SELECT * FROM _closed ORDER BY time // ?, entity_type,"
                " entity_code, signal, time", [CLUSTER_BUCKET_SECONDS]).fetchone()
            self._con.execute("DROP TABLE _closed")
            self.set_state(CLUSTERED_UNTIL_KEY, str(closed_before))
        return Compaction(start, closed_before, int(row[0]) if row else 0)

    # -- bookkeeping --------------------------------------------------------------------
    def get_state(self, key: str) -> str | None:
        row = self._con.execute("SELECT value FROM state WHERE key = ?", [key]).fetchone()
        return None if row is None else str(row[0])

    def set_state(self, key: str, value: str) -> None:
        with self.transaction():
            self._con.execute(
                "INSERT INTO state VALUES (?, ?) ON CONFLICT (key) DO UPDATE"
                " SET value = excluded.value",
                [key, value],
            )

    def delete_state(self, key: str) -> None:
        with self.transaction():
            self._con.execute("DELETE FROM state WHERE key = ?", [key])

    def state_keys(self, prefix: str) -> list[str]:
        """The state keys starting with ``prefix``, sorted."""
        return [str(r[0]) for r in self._con.execute(
            "SELECT key FROM state WHERE starts_with(key, ?) ORDER BY key", [prefix]).fetchall()]

    def state_size(self, prefix: str) -> int:
        """Characters of the state values whose keys start with ``prefix``."""
        row = self._con.execute("SELECT coalesce(sum(length(value)), 0) FROM state"
                                " WHERE starts_with(key, ?)", [prefix]).fetchone()
        return int(row[0]) if row else 0

    def record_import(self, rec: ImportRecord) -> int:
        """Append one imports row (bookkeeping is a log, not a fact: not deduplicated)."""
        with self.transaction():
            row = self._con.execute("SELECT coalesce(max(id), 0) + 1 FROM imports").fetchone()
            new_id = int(row[0]) if row else 1
            self._con.execute(
                "INSERT INTO imports VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    new_id, rec.file_name, rec.sha256, rec.format, rec.rows_read,
                    rec.rows_written, rec.rows_skipped, rec.inserted, rec.updated,
                    rec.unchanged, list(rec.source_names),
                    rec.imported_at or int(_time.time()),
                ],
            )
        return new_id

    def list_imports(self) -> list[ImportRecord]:
        rows = self._con.execute(
            "SELECT file_name, sha256, format, rows_read, rows_written, rows_skipped, inserted,"
            " updated, unchanged, source_names, imported_at FROM imports ORDER BY id"
        ).fetchall()
        return [
            ImportRecord(r[0], r[1], r[2], int(r[3]), int(r[4]), int(r[5]), int(r[6]),
                         int(r[7]), int(r[8]), tuple(r[9]), int(r[10]))
            for r in rows
        ]

    def export_parquet(self, directory: str | Path) -> list[Path]:
        """One ``<table>.parquet`` per table via DuckDB COPY; returns the paths in table order."""
        out_dir = Path(directory)
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create {out_dir}: {exc}") from exc
        paths = []
        for table in TABLES:
            target = out_dir / f"{table}.parquet"
            quoted = str(target).replace("'", "''")
            try:
                self._con.execute(f"COPY {table} TO '{quoted}' (FORMAT parquet)")
            except duckdb.Error as exc:
                raise StoreError(f"export of {table} to {target} failed: {exc}") from exc
            paths.append(target)
        return paths
